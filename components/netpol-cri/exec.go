package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/client-go/tools/remotecommand"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"
)

// execCommand is a process in a running container's namespaces, started through util-linux's
// nsenter: a Go program cannot join another mount namespace once it runs several threads, and
// nsenter is single-threaded. It enters the mount, UTS, IPC, network and PID namespaces of the
// container's first process, takes its root and working directory, and runs as the
// container's user. It is the runtime's child, in the runtime's own cgroups (none is made).
func (c *container) execCommand(ctx context.Context, argv []string) (*exec.Cmd, error) {
	c.mu.Lock()
	pid, state := c.pid, c.state
	c.mu.Unlock()
	if state != runtimeapi.ContainerState_CONTAINER_RUNNING || pid == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running", c.id)
	}
	if len(argv) == 0 {
		return nil, status.Error(codes.InvalidArgument, "exec: empty command")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return nil, fmt.Errorf("exec needs util-linux's nsenter: %w", err)
	}
	args := []string{"--target", strconv.Itoa(pid), "--mount", "--uts", "--ipc", "--net", "--pid",
		"--root", "--wd", "--setuid", strconv.Itoa(int(c.spec.UID)), "--setgid", strconv.Itoa(int(c.spec.GID)), "--"}
	cmd := exec.CommandContext(ctx, nsenter, append(args, argv...)...)
	cmd.Env = c.spec.Env
	// Its own process group. A timeout kills the command nsenter forked (and what it started)
	// but not nsenter, which then reaps it and exits: killed together, the command would be
	// left a zombie of the container's first process, which need not reap anything.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { killGroupBut(cmd.Process.Pid); return nil }
	cmd.WaitDelay = 2 * time.Second // then nsenter itself is killed
	return cmd, nil
}

func (r *criRuntime) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	cmd, err := c.execCommand(ctx, req.GetCmd())
	if err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, status.Errorf(codes.DeadlineExceeded, "command %q timed out after %d s", req.GetCmd(), req.GetTimeout())
	}
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		return nil, err
	}
	return &runtimeapi.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// Exec, Attach and PortForward hand out URLs of the streaming server, which calls back the
// methods of streamRuntime below.
func (r *criRuntime) Exec(_ context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if _, err := r.getContainer(req.GetContainerId()); err != nil {
		return nil, err
	}
	if req.GetTty() {
		return nil, status.Error(codes.Unimplemented, "exec with a terminal (tty) is not supported by netpol-cri")
	}
	return r.stream.GetExec(req)
}

func (r *criRuntime) Attach(_ context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	if _, err := r.getContainer(req.GetContainerId()); err != nil {
		return nil, err
	}
	if req.GetTty() {
		return nil, status.Error(codes.Unimplemented, "attach with a terminal (tty) is not supported by netpol-cri")
	}
	return r.stream.GetAttach(req)
}

func (r *criRuntime) PortForward(_ context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if _, err := r.getSandbox(req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	return r.stream.GetPortForward(req)
}

// ExecInContainer etc. are the streaming server's Runtime (k8s.io/kubelet/pkg/cri/streaming).
// A non-zero exit is returned as utilexec.CodeExitError, which the server reports as the exit
// code to the client.
func (r *criRuntime) streamExec(ctx context.Context, containerID string, argv []string, in io.Reader, out, errw io.WriteCloser) error {
	c, err := r.getContainer(containerID)
	if err != nil {
		return err
	}
	cmd, err := c.execCommand(ctx, argv)
	if err != nil {
		return err
	}
	if in != nil {
		cmd.Stdin = in
	}
	if out != nil {
		cmd.Stdout = out
	}
	if errw != nil {
		cmd.Stderr = errw
	}
	err = cmd.Run()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
	}
	return err
}

// streamRuntime adapts criRuntime to the streaming server's Runtime interface.
type streamRuntime struct{ r *criRuntime }

func (s streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, _ <-chan remotecommand.TerminalSize) error {
	if tty {
		return errors.New("exec with a terminal (tty) is not supported by netpol-cri")
	}
	return s.r.streamExec(ctx, containerID, cmd, in, out, errw)
}

// Attach streams the container's output (and, when it was started with stdin, its input)
// until the container exits or the client goes.
func (s streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool, _ <-chan remotecommand.TerminalSize) error {
	c, err := s.r.getContainer(containerID)
	if err != nil {
		return err
	}
	if tty {
		return errors.New("attach with a terminal (tty) is not supported by netpol-cri")
	}
	unsubscribe := c.output.subscribe(out, errw)
	defer unsubscribe()
	c.mu.Lock()
	stdin, done := c.stdin, c.done
	c.mu.Unlock()
	if in != nil && stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, in)
			if c.config.GetStdinOnce() {
				stdin.Close()
			}
		}()
	}
	if done == nil {
		return fmt.Errorf("container %s has not started", containerID)
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// PortForward connects the stream to localhost:port inside the pod's network namespace.
func (s streamRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	sb, err := s.r.getSandbox(podSandboxID)
	if err != nil {
		return err
	}
	conn, err := dialIn(ctx, sb.netnsPath, fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("port-forward to port %d of pod %s: %w", port, podName(sb.config), err)
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(conn, stream); errc <- err }()
	go func() { _, err := io.Copy(stream, conn); errc <- err }()
	return <-errc
}

// dialIn opens a TCP connection from inside network namespace netnsPath ("" = ours). The
// socket is made on a thread that has joined the namespace and is then discarded.
func dialIn(ctx context.Context, netnsPath, addr string) (net.Conn, error) {
	if netnsPath == "" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	type result struct {
		conn net.Conn
		err  error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends in the pod's namespace
		fd, err := unix.Open(netnsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			res <- result{nil, err}
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			res <- result{nil, err}
			return
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		res <- result{conn, err}
	}()
	r := <-res
	return r.conn, r.err
}

// killGroupBut sends SIGKILL to every process of process group pgid except its leader.
func killGroupBut(pgid int) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
