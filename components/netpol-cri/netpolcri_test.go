package main

import (
	"bytes"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNormaliseRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                      "docker.io/library/busybox:latest",
		"busybox:1.36":                 "docker.io/library/busybox:1.36",
		"library/busybox":              "docker.io/library/busybox:latest",
		"user/app:v1":                  "docker.io/user/app:v1",
		"registry.k8s.io/pause:3.10":   "registry.k8s.io/pause:3.10",
		"localhost/app":                "localhost/app:latest",
		"localhost:5000/app":           "localhost:5000/app:latest",
		"registry.k8s.io/x@sha256:abc": "registry.k8s.io/x@sha256:abc",
		"registry.k8s.io/e2e-test-images/agnhost:2.66.1": "registry.k8s.io/e2e-test-images/agnhost:2.66.1",
	} {
		if got := normaliseRef(in); got != want {
			t.Errorf("normaliseRef(%q) = %q, want %q", in, got, want)
		}
	}
}

type piece struct {
	content string
	full    bool
}

func TestCopyOutputSplitsLinesButHandsRawOutputOnAtOnce(t *testing.T) {
	long := strings.Repeat("x", maxLogLine+5)
	in := "one\ntwo\n" + long + "\nno newline"
	var raw bytes.Buffer
	var lines []piece
	copyOutput(strings.NewReader(in), func(b []byte) { raw.Write(b) },
		func(b []byte, full bool) { lines = append(lines, piece{string(b), full}) })
	if raw.String() != in {
		t.Fatalf("raw output changed: %d bytes, want %d", raw.Len(), len(in))
	}
	want := []piece{{"one", true}, {"two", true}, {long[:maxLogLine], false},
		{long[maxLogLine:], true}, {"no newline", true}}
	if len(lines) != len(want) {
		t.Fatalf("got %d log lines, want %d", len(lines), len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: got (%d bytes, full=%v), want (%d bytes, full=%v)", i,
				len(lines[i].content), lines[i].full, len(want[i].content), want[i].full)
		}
	}
}

func TestCheckSysctlsKeepsToThePodsNamespaces(t *testing.T) {
	cases := []struct {
		sysctl           string
		hostNet, hostIPC bool
		ok               bool
	}{
		{"net.ipv4.ip_local_port_range", false, false, true},
		{"net.ipv4.ip_forward", true, false, false}, // the node's network
		{"kernel.shm_rmid_forced", false, false, true},
		{"fs.mqueue.msg_max", false, true, false}, // the node's IPC
		{"kernel.pid_max", false, false, false},   // the machine's
		{"vm.swappiness", false, false, false},
		{"net.ipv4.conf.all/../../../x", false, false, false},
	}
	for _, c := range cases {
		err := checkSysctls(map[string]string{c.sysctl: "1"}, c.hostNet, c.hostIPC)
		if (err == nil) != c.ok {
			t.Errorf("checkSysctls(%s, hostNet=%v, hostIPC=%v) = %v, want ok=%v", c.sysctl, c.hostNet, c.hostIPC, err, c.ok)
		}
	}
}

func TestParseUser(t *testing.T) {
	if u, g, err := parseUser("1000:2000"); err != nil || u != 1000 || g != 2000 {
		t.Errorf("1000:2000 -> %d %d %v", u, g, err)
	}
	if u, g, err := parseUser("65534"); err != nil || u != 65534 || g != 0 {
		t.Errorf("65534 -> %d %d %v", u, g, err)
	}
	if _, _, err := parseUser("nobody"); err == nil {
		t.Error("a user name must be refused: images here have no /etc/passwd of their own")
	}
}

func init() { runtime.LockOSThread() }

// A container is started with Pdeathsig SIGKILL so that it dies with the runtime. Linux sends
// that signal when the *thread* that started the child exits, not the process; a Go thread
// exits when a goroutine locked to it (runtime.LockOSThread, as the namespace helpers do)
// returns without unlocking. A container started on such a thread was killed (exit 137) at a
// random later moment. startKept starts every container on a thread that never exits.
func TestAChildOutlivesTheThreadThatStartedIt(t *testing.T) {
	// the goroutine below must not run on the main thread, which Go never ends: the test
	// binary's main goroutine holds it (init below)
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread ends with the goroutine
		started <- startKept(cmd)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(500 * time.Millisecond)
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pid != 0 {
		t.Fatalf("the child died with the thread that started it: %v", ws)
	}
}
