package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// container is one process tree in its own mount and PID namespaces (see initproc.go).
type container struct {
	id      string
	sb      *sandbox
	config  *runtimeapi.ContainerConfig
	image   *imageEntry
	created time.Time
	dir     string // <root>/containers/<id>: spec.json, rootfs/
	logPath string // "" when the sandbox has no log directory
	spec    initSpec
	output  *broadcaster // stdout and stderr, for attach

	mu       sync.Mutex
	state    runtimeapi.ContainerState
	started  time.Time
	finished time.Time
	exitCode int32
	reason   string
	message  string
	pid      int
	stdin    *os.File
	log      *criLog
	done     chan struct{} // closed once the process is reaped and its output is logged
}

func (r *criRuntime) CreateContainer(_ context.Context, req *runtimeapi.CreateContainerRequest) (*runtimeapi.CreateContainerResponse, error) {
	sb, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "CreateContainer: config.metadata.name is empty")
	}
	img := r.images.pulledEntry(cfg.GetImage().GetImage())
	if img == nil {
		return nil, status.Errorf(codes.NotFound, "image %q is not present: pull it first (local catalog %s)",
			cfg.GetImage().GetImage(), r.images.path)
	}
	id := newID()
	c := &container{id: id, sb: sb, config: cfg, image: img, created: time.Now(),
		dir: filepath.Join(r.opts.root, "containers", id), state: runtimeapi.ContainerState_CONTAINER_CREATED,
		output: newBroadcaster()}
	if dir, p := sb.config.GetLogDirectory(), cfg.GetLogPath(); dir != "" && p != "" {
		c.logPath = filepath.Join(dir, p)
	}
	c.spec, err = buildSpec(c)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "container %s of pod %s: %v", cfg.GetMetadata().GetName(), podName(sb.config), err)
	}
	if err := os.MkdirAll(c.spec.Rootfs, 0o755); err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(c.spec, "", "  ")
	if err := os.WriteFile(filepath.Join(c.dir, "spec.json"), data, 0o600); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.containers[id] = c
	r.mu.Unlock()
	return &runtimeapi.CreateContainerResponse{ContainerId: id}, nil
}

// buildSpec turns the kubelet's container config and the image into what the container's init
// does: the root filesystem's binds, the pod's files, the kubelet's mounts, argv, env, user.
func buildSpec(c *container) (initSpec, error) {
	cfg, img, sb := c.config, c.image, c.sb
	s := initSpec{Rootfs: filepath.Join(c.dir, "rootfs"), NetNS: sb.netnsPath, UTSNS: sb.utsPath,
		IPCNS: sb.ipcPath, Cwd: cfg.GetWorkingDir()}
	// Kubernetes semantics: a command replaces the image's entrypoint and cmd; args alone
	// replace the cmd.
	switch {
	case len(cfg.GetCommand()) > 0:
		s.Args = append(append([]string{}, cfg.GetCommand()...), cfg.GetArgs()...)
	case len(cfg.GetArgs()) > 0:
		s.Args = append(append([]string{}, img.Entrypoint...), cfg.GetArgs()...)
	default:
		s.Args = append(append([]string{}, img.Entrypoint...), img.Cmd...)
	}
	if len(s.Args) == 0 {
		return s, errors.New("no command: neither the config nor the image gives one")
	}
	env := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := env[k]; !ok {
			order = append(order, k)
		}
		env[k] = v
	}
	set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	for _, kv := range img.Env {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	set("HOSTNAME", strings.TrimSpace(readFile(filepath.Join(sb.dir, "hostname"))))
	for _, kv := range cfg.GetEnvs() {
		set(kv.GetKey(), string(kv.GetValue()))
	}
	for _, k := range order {
		s.Env = append(s.Env, k+"="+env[k])
	}
	if s.Cwd == "" {
		s.Cwd = img.Workdir
	}
	if s.Cwd == "" {
		s.Cwd = "/"
	}
	sc := cfg.GetLinux().GetSecurityContext()
	if img.User != "" {
		uid, gid, err := parseUser(img.User)
		if err != nil {
			return s, fmt.Errorf("image %s: %v", img.ref, err)
		}
		s.UID, s.GID = uid, gid
	}
	if sc.GetRunAsUsername() != "" {
		uid, gid, err := parseUser(sc.GetRunAsUsername())
		if err != nil {
			return s, err
		}
		s.UID, s.GID = uid, gid
	}
	if sc.GetRunAsUser() != nil {
		s.UID = uint32(sc.GetRunAsUser().GetValue())
	}
	if sc.GetRunAsGroup() != nil && sc.GetRunAsUser() == nil && sc.GetRunAsUsername() == "" {
		return s, errors.New("run_as_group is set without run_as_user")
	}
	if sc.GetRunAsGroup() != nil {
		s.GID = uint32(sc.GetRunAsGroup().GetValue())
	}
	for _, g := range sc.GetSupplementalGroups() {
		s.Groups = append(s.Groups, uint32(g))
	}
	s.ReadonlyRootfs = sc.GetReadonlyRootfs()
	s.MaskedPaths, s.ReadonlyPaths = sc.GetMaskedPaths(), sc.GetReadonlyPaths()
	for _, b := range img.Binds {
		s.Mounts = append(s.Mounts, mountSpec{Source: b.Source, Target: b.Target, Readonly: true})
	}
	s.Mounts = append(s.Mounts,
		mountSpec{Source: filepath.Join(sb.dir, "resolv.conf"), Target: "/etc/resolv.conf", Readonly: s.ReadonlyRootfs},
		mountSpec{Source: filepath.Join(sb.dir, "hostname"), Target: "/etc/hostname", Readonly: s.ReadonlyRootfs})
	for _, m := range cfg.GetMounts() {
		if m.GetImage() != nil {
			return s, fmt.Errorf("mount %s: image volumes are not supported", m.GetContainerPath())
		}
		src, err := filepath.EvalSymlinks(m.GetHostPath()) // the CRI says: follow the link
		if err != nil {
			return s, fmt.Errorf("mount %s: host path %s: %v", m.GetContainerPath(), m.GetHostPath(), err)
		}
		s.Mounts = append(s.Mounts, mountSpec{Source: src, Target: m.GetContainerPath(), Readonly: m.GetReadonly()})
	}
	return s, nil
}

// parseUser reads "uid" or "uid:gid" (numbers only: images here have no /etc/passwd to look
// a name up in).
func parseUser(u string) (uint32, uint32, error) {
	us, gs, hasGroup := strings.Cut(u, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("user %q: only numeric users are supported (no /etc/passwd)", u)
	}
	gid := uint64(0)
	if hasGroup {
		if gid, err = strconv.ParseUint(gs, 10, 32); err != nil {
			return 0, 0, fmt.Errorf("user %q: only numeric groups are supported", u)
		}
	}
	return uint32(uid), uint32(gid), nil
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func (r *criRuntime) StartContainer(_ context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != runtimeapi.ContainerState_CONTAINER_CREATED {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is %s, not created", c.id, c.state)
	}
	if !c.sb.ready.Load() {
		return nil, status.Errorf(codes.FailedPrecondition, "pod sandbox %s is not ready", c.sb.id)
	}
	if err := c.start(); err != nil {
		c.state = runtimeapi.ContainerState_CONTAINER_EXITED
		c.finished, c.exitCode, c.reason, c.message = time.Now(), 128, "StartError", err.Error()
		return nil, fmt.Errorf("starting container %s: %w", c.config.GetMetadata().GetName(), err)
	}
	return &runtimeapi.StartContainerResponse{}, nil
}

// start runs the container's init (this binary again, initproc.go) in new mount and PID
// namespaces; the init joins the pod's namespaces, builds the root filesystem and executes the
// container's command. A pipe tells whether it got that far: closed on exec (close-on-exec),
// an error message otherwise. Called with c.mu held.
func (c *container) start() error {
	var err error
	if c.logPath != "" {
		if c.log, err = openCRILog(c.logPath); err != nil {
			return err
		}
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command("/proc/self/exe", initArg, filepath.Join(c.dir, "spec.json"))
	cmd.Stdout, cmd.Stderr = outW, errW
	if c.config.GetStdin() {
		inR, inW, err := os.Pipe()
		if err != nil {
			return err
		}
		cmd.Stdin, c.stdin = inR, inW
		defer inR.Close()
	}
	cmd.ExtraFiles = []*os.File{syncW}
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL, // the runtime gone, its containers go too
	}
	err = startKept(cmd)
	outW.Close()
	errW.Close()
	syncW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		syncR.Close()
		return err
	}
	msg := make([]byte, 4096)
	n, _ := syncR.Read(msg)
	syncR.Close()
	c.pid = cmd.Process.Pid
	c.started = time.Now()
	c.state = runtimeapi.ContainerState_CONTAINER_RUNNING
	c.done = make(chan struct{})
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); c.copyOutput("stdout", outR) }()
	go func() { defer copies.Done(); c.copyOutput("stderr", errR) }()
	go c.wait(cmd, &copies)
	if n > 0 { // the process exits by itself; wait() records it
		return errors.New(strings.TrimSpace(string(msg[:n])))
	}
	return nil
}

func (c *container) copyOutput(stream string, r *os.File) {
	defer r.Close()
	copyOutput(r, func(data []byte) { c.output.write(stream, data) }, func(line []byte, full bool) {
		c.mu.Lock()
		l := c.log
		c.mu.Unlock()
		if l != nil {
			l.write(stream, line, full)
		}
	})
}

func (c *container) wait(cmd *exec.Cmd, copies *sync.WaitGroup) {
	_ = cmd.Wait()
	copies.Wait()
	ps := cmd.ProcessState
	code := int32(ps.ExitCode())
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int32(ws.Signal())
	}
	c.mu.Lock()
	c.state = runtimeapi.ContainerState_CONTAINER_EXITED
	c.finished, c.exitCode, c.pid = time.Now(), code, 0
	if c.reason == "" {
		c.reason = "Completed"
		if code != 0 {
			c.reason = "Error"
		}
	}
	if c.stdin != nil {
		c.stdin.Close()
	}
	if c.log != nil {
		c.log.close()
	}
	c.mu.Unlock()
	c.output.close()
	close(c.done)
}

// stopContainer sends the stop signal, waits up to timeout seconds, then SIGKILL. A PID
// namespace's first process ignores signals it has no handler for (only SIGKILL always
// reaches it), so a container whose command does not handle SIGTERM takes the full timeout.
func (r *criRuntime) stopContainer(c *container, timeout int64) error {
	c.mu.Lock()
	pid, done := c.pid, c.done
	if c.state == runtimeapi.ContainerState_CONTAINER_CREATED {
		c.state = runtimeapi.ContainerState_CONTAINER_EXITED
		c.finished, c.reason = time.Now(), "Stopped before start"
	}
	running := c.state == runtimeapi.ContainerState_CONTAINER_RUNNING
	c.mu.Unlock()
	if !running || pid == 0 {
		return nil
	}
	sig := syscall.SIGTERM
	if s := c.config.GetStopSignal(); s != runtimeapi.Signal_RUNTIME_DEFAULT {
		if n, ok := signalNumber(s); ok {
			sig = n
		}
	}
	if timeout > 0 {
		// Sent again every second: a signal that comes before the command has installed its
		// handler is dropped (see above), which happens when a stop follows a start at once.
		deadline := time.After(time.Duration(timeout) * time.Second)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		_ = syscall.Kill(pid, sig)
	wait:
		for {
			select {
			case <-done:
				return nil
			case <-tick.C:
				_ = syscall.Kill(pid, sig)
			case <-deadline:
				break wait
			}
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("container %s (pid %d) still runs 30 s after SIGKILL", c.id, pid)
	}
}

func signalNumber(s runtimeapi.Signal) (syscall.Signal, bool) {
	name := runtimeapi.Signal_name[int32(s)]
	for n := syscall.Signal(1); n < 65; n++ {
		if strings.EqualFold(unix.SignalName(n), name) {
			return n, true
		}
	}
	return 0, false
}

func (r *criRuntime) StopContainer(_ context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return &runtimeapi.StopContainerResponse{}, nil // already gone: stopped
	}
	if err := r.stopContainer(c, req.GetTimeout()); err != nil {
		return nil, err
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

func (r *criRuntime) removeContainer(c *container) error {
	if err := r.stopContainer(c, 0); err != nil {
		return err
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.containers, c.id)
	r.mu.Unlock()
	return nil
}

func (r *criRuntime) RemoveContainer(_ context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err := r.removeContainer(c); err != nil {
		return nil, err
	}
	return &runtimeapi.RemoveContainerResponse{}, nil
}

func (r *criRuntime) listContainers(f *runtimeapi.ContainerFilter) []*container {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*container
	for _, id := range sortedKeys(r.containers) {
		c := r.containers[id]
		if f.GetId() != "" && !strings.HasPrefix(id, f.GetId()) {
			continue
		}
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(c.sb.id, f.GetPodSandboxId()) {
			continue
		}
		if f.GetState() != nil && c.currentState() != f.GetState().GetState() {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), c.config.GetLabels()) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func (c *container) currentState() runtimeapi.ContainerState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

func (r *criRuntime) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	var out []*runtimeapi.Container
	for _, c := range r.listContainers(req.GetFilter()) {
		out = append(out, &runtimeapi.Container{Id: c.id, PodSandboxId: c.sb.id,
			Metadata: c.config.GetMetadata(), Image: c.config.GetImage(), ImageRef: c.image.id,
			ImageId: c.image.id, State: c.currentState(), CreatedAt: c.created.UnixNano(),
			Labels: c.config.GetLabels(), Annotations: c.config.GetAnnotations()})
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

func (r *criRuntime) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &runtimeapi.ContainerStatus{Id: c.id, Metadata: c.config.GetMetadata(), State: c.state,
		CreatedAt: c.created.UnixNano(), ExitCode: c.exitCode, Image: c.config.GetImage(),
		ImageRef: c.image.id, ImageId: c.image.id, Reason: c.reason, Message: c.message,
		Labels: c.config.GetLabels(), Annotations: c.config.GetAnnotations(),
		Mounts: c.config.GetMounts(), LogPath: c.logPath, StopSignal: c.config.GetStopSignal(),
		User: &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{Uid: int64(c.spec.UID),
			Gid: int64(c.spec.GID), SupplementalGroups: toInt64(c.spec.Groups)}}}
	if !c.started.IsZero() {
		st.StartedAt = c.started.UnixNano()
	}
	if !c.finished.IsZero() {
		st.FinishedAt = c.finished.UnixNano()
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: st}
	if req.GetVerbose() {
		resp.Info = map[string]string{"pid": strconv.Itoa(c.pid), "dir": c.dir}
	}
	return resp, nil
}

func toInt64(v []uint32) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

func (r *criRuntime) ReopenContainerLog(_ context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return nil, status.Errorf(codes.FailedPrecondition, "container %s is not running", c.id)
	}
	if c.log != nil {
		if err := c.log.reopen(); err != nil {
			return nil, err
		}
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// keeper is one goroutine locked to its OS thread for the runtime's whole life: every
// container is started there. A container carries Pdeathsig SIGKILL (it dies with the
// runtime), which Linux sends when the *thread* that started it exits; Go ends a thread when a
// goroutine locked to it returns without unlocking, as the namespace helpers do (a sandbox's
// unshare, dialIn), so a container started on any other thread was killed (exit 137) at a
// random later moment, whenever such a helper happened to run on that thread.
var keeper = func() chan func() {
	jobs := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked, never returns: this thread lives as long as we do
		for job := range jobs {
			job()
		}
	}()
	return jobs
}()

// startKept starts cmd on the keeper thread (see TestAChildOutlivesTheThreadThatStartedIt).
func startKept(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	keeper <- func() { done <- cmd.Start() }
	return <-done
}
