package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// initSpec is everything a container's init needs (written by CreateContainer as spec.json).
type initSpec struct {
	Rootfs         string      `json:"rootfs"`
	Mounts         []mountSpec `json:"mounts"`
	NetNS          string      `json:"netns,omitempty"`
	UTSNS          string      `json:"utsns,omitempty"`
	IPCNS          string      `json:"ipcns,omitempty"`
	Args           []string    `json:"args"`
	Env            []string    `json:"env"`
	Cwd            string      `json:"cwd"`
	UID            uint32      `json:"uid"`
	GID            uint32      `json:"gid"`
	Groups         []uint32    `json:"groups,omitempty"`
	ReadonlyRootfs bool        `json:"readonlyRootfs,omitempty"`
	MaskedPaths    []string    `json:"maskedPaths,omitempty"`
	ReadonlyPaths  []string    `json:"readonlyPaths,omitempty"`
}

type mountSpec struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	Readonly bool   `json:"readonly,omitempty"`
}

// The main goroutine of the init stays on the main thread: the namespaces it joins are the
// thread's, and the exec at the end must happen on that same thread.
func init() {
	if len(os.Args) > 1 && os.Args[1] == initArg {
		runtime.LockOSThread()
	}
}

// containerInit runs as the first process of a new PID namespace, in a new mount namespace
// (CLONE_NEWPID | CLONE_NEWNS from StartContainer). It joins the pod's network, UTS and IPC
// namespaces, builds the root filesystem on a tmpfs, pivots into it and executes the command.
// Any failure is written to fd 3 (the runtime reports it) and ends the process.
func containerInit(args []string) {
	sync := os.NewFile(3, "sync")
	unix.CloseOnExec(3)
	fail := func(err error) {
		fmt.Fprintf(sync, "%v", err)
		os.Exit(127)
	}
	if len(args) != 1 {
		fail(errors.New("usage: netpol-cri-init SPEC.json"))
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		fail(err)
	}
	var s initSpec
	if err := json.Unmarshal(data, &s); err != nil {
		fail(fmt.Errorf("%s: %w", args[0], err))
	}
	if err := setupContainer(&s); err != nil {
		fail(err)
	}
	path, err := lookPath(s.Args[0], s.Env)
	if err != nil {
		fail(err)
	}
	err = syscall.Exec(path, s.Args, s.Env)
	fail(fmt.Errorf("executing %s: %w", path, err))
}

func setupContainer(s *initSpec) error {
	// Nothing mounted here may reach the node's mount namespace.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the mounts private: %w", err)
	}
	for _, ns := range []struct {
		path string
		flag int
	}{{s.NetNS, unix.CLONE_NEWNET}, {s.UTSNS, unix.CLONE_NEWUTS}, {s.IPCNS, unix.CLONE_NEWIPC}} {
		if ns.path == "" {
			continue
		}
		if err := joinNamespace(ns.path, ns.flag); err != nil {
			return err
		}
	}
	root := s.Rootfs
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=755,size=64m"); err != nil {
		return fmt.Errorf("mounting the root tmpfs on %s: %w", root, err)
	}
	for _, d := range []string{"proc", "dev", "sys", "etc", "tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return err
	}
	for _, m := range s.Mounts {
		if err := bindInto(root, m); err != nil {
			return err
		}
	}
	if err := unix.Mount("proc", filepath.Join(root, "proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	// sysfs mounted by this thread shows the pod's network devices; read-only.
	if err := unix.Mount("sysfs", filepath.Join(root, "sys"), "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	if err := setupDev(filepath.Join(root, "dev")); err != nil {
		return err
	}
	if err := maskPaths(root, s.MaskedPaths, s.ReadonlyPaths); err != nil {
		return err
	}
	if s.ReadonlyRootfs {
		if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("making the root read-only: %w", err)
		}
	}
	if err := pivot(root); err != nil {
		return err
	}
	if err := os.Chdir(s.Cwd); err != nil {
		return fmt.Errorf("working directory %s: %w", s.Cwd, err)
	}
	if err := unix.Setgroups(toInts(s.Groups)); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setresgid(int(s.GID), int(s.GID), int(s.GID)); err != nil {
		return fmt.Errorf("setgid %d: %w", s.GID, err)
	}
	if err := unix.Setresuid(int(s.UID), int(s.UID), int(s.UID)); err != nil {
		return fmt.Errorf("setuid %d: %w", s.UID, err)
	}
	return nil
}

func joinNamespace(path string, flag int) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, flag); err != nil {
		return fmt.Errorf("joining namespace %s: %w", path, err)
	}
	return nil
}

// bindInto bind-mounts m.Source at m.Target inside root, creating the target as a directory or
// an empty file to match the source. A source that is a symbolic link is recreated as the same
// link (images: /bin -> usr/bin on a merged-/usr host).
func bindInto(root string, m mountSpec) error {
	target := filepath.Join(root, filepath.Clean("/"+m.Target))
	fi, err := os.Lstat(m.Source)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m.Target, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("mount %s: %w", m.Target, err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		link, err := os.Readlink(m.Source)
		if err != nil {
			return err
		}
		if err := os.Symlink(link, target); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("link %s -> %s: %w", m.Target, link, err)
		}
		return nil
	}
	if fi.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else if _, serr := os.Stat(target); errors.Is(serr, os.ErrNotExist) {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("mount %s: creating the target: %w", m.Target, err)
	}
	if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Source, m.Target, err)
	}
	if m.Readonly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("mount %s read-only: %w", m.Target, err)
		}
	}
	return nil
}

// setupDev gives the container a small /dev: the node's null, zero, full, random, urandom and
// tty bound in, a private /dev/shm, and the usual links. No /dev/pts: no terminals.
func setupDev(dev string) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		if err := bindInto(dev, mountSpec{Source: "/dev/" + name, Target: "/" + name}); err != nil {
			return err
		}
	}
	shm := filepath.Join(dev, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return err
	}
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev/shm: %w", err)
	}
	for link, to := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(to, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	return nil
}

// maskPaths hides the kubelet's masked paths (an empty read-only tmpfs on a directory,
// /dev/null on a file) and makes its read-only paths read-only; paths that do
// not exist are skipped.
func maskPaths(root string, masked, readonly []string) error {
	for _, p := range masked {
		target := filepath.Join(root, filepath.Clean("/"+p))
		fi, err := os.Stat(target)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", target, "tmpfs", unix.MS_RDONLY, "size=0")
		} else {
			err = unix.Mount("/dev/null", target, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	for _, p := range readonly {
		target := filepath.Join(root, filepath.Clean("/"+p))
		if _, err := os.Stat(target); err != nil {
			continue
		}
		if err := unix.Mount(target, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("read-only path %s: %w", p, err)
		}
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("read-only path %s: %w", p, err)
		}
	}
	return nil
}

// pivot makes root the root directory of this mount namespace and detaches the old one.
func pivot(root string) error {
	if err := os.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root into %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return os.Chdir("/")
}

// lookPath finds the command in the container's PATH, as a shell there would.
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, cmd)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH %s", cmd, path)
}

func toInts(v []uint32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}
