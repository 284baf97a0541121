// netpol-cri: netpol-proof's own small CRI runtime, for a real kubelet on a machine where no
// process may create a cgroup or move into one (docs/real-nodes.md says why containerd + runc
// cannot run there).
//
// What it is: a RuntimeService and an ImageService (k8s.io/cri-api v1) over a unix socket.
//   - A pod sandbox is three namespaces and no process: network (a file under /run/netns named
//     with the run's prefix, wired by the CNI plugins through libcni (cni.go)),
//     UTS (the pod's hostname) and IPC, each kept alive by a bind mount.
//   - A container is a process started in its own mount and PID namespaces, joined to its pod's
//     network, UTS and IPC namespaces, in a root filesystem built from its image (a local
//     catalog, images.go), with the pod's resolv.conf, hostname and the kubelet's mounts bound
//     in. Its stdout and stderr go to the CRI log file in the CRI log format.
//   - exec, attach and port-forward are served by the kubelet's CRI streaming server package
//     (k8s.io/kubelet/pkg/cri/streaming).
//   - No cgroups at all: no resource limits, no OOM accounting, empty stats.
//
// State lives in memory and under --root; on SIGTERM or SIGINT every container is stopped and
// every sandbox torn down (CNI DEL, namespaces unmounted) before it exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/kubelet/pkg/cri/streaming"
)

// Version is this runtime's own version, reported by the CRI Version call.
const Version = "0.1.0"

// initArg is argv[1] of the re-executed runtime that becomes a container (initproc.go).
const initArg = "netpol-cri-init"

type options struct {
	socket     string
	root       string
	netnsDir   string
	netnsName  string // prefix of every network namespace name, e.g. np-1a2b3c-
	catalog    string
	cniConfDir string
	cniBinDir  string
	streamAddr string
}

var netnsPrefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

func main() {
	if len(os.Args) > 1 && os.Args[1] == initArg {
		containerInit(os.Args[2:]) // never returns
	}
	var o options
	flag.StringVar(&o.socket, "socket", "", "the unix socket to serve the CRI on (required)")
	flag.StringVar(&o.root, "root", "", "the state directory: sandboxes, containers, CNI cache (required)")
	flag.StringVar(&o.netnsDir, "netns-dir", "/run/netns", "where the pods' network namespace files go")
	flag.StringVar(&o.netnsName, "netns-prefix", "", "prefix of the pods' network namespace names (required), e.g. np-1a2b3c-")
	flag.StringVar(&o.catalog, "image-catalog", "", "the local image catalog, a JSON file (required; see images.go)")
	flag.StringVar(&o.cniConfDir, "cni-conf-dir", "", "CNI network configurations: the first .conflist/.conf/.json by name is used")
	flag.StringVar(&o.cniBinDir, "cni-bin-dir", "", "where the CNI plugins are")
	flag.StringVar(&o.streamAddr, "stream-address", "127.0.0.1:0", "address of the exec/attach/port-forward server")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Printf("netpol-cri %s\n", Version)
		return
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "netpol-cri: %v\n", err)
		os.Exit(1)
	}
}

func run(o options) error {
	for name, v := range map[string]string{"--socket": o.socket, "--root": o.root,
		"--netns-prefix": o.netnsName, "--image-catalog": o.catalog} {
		if v == "" {
			return fmt.Errorf("%s is required", name)
		}
	}
	if !netnsPrefixRE.MatchString(o.netnsName) {
		return fmt.Errorf("--netns-prefix %q: want lowercase letters, digits and dashes", o.netnsName)
	}
	for _, d := range []string{o.root, o.netnsDir, filepath.Dir(o.socket)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	images, err := loadCatalog(o.catalog)
	if err != nil {
		return err
	}
	rt := newRuntime(o, images)

	// The streaming server answers on a listener of our own, so that its URLs carry the real
	// port from the first request on.
	streamLn, err := net.Listen("tcp", o.streamAddr)
	if err != nil {
		return fmt.Errorf("listening for streams on %s: %w", o.streamAddr, err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = streamLn.Addr().String()
	stream, err := streaming.NewServer(cfg, streamRuntime{rt})
	if err != nil {
		return err
	}
	rt.stream = stream
	go func() { _ = http.Serve(streamLn, stream) }()

	_ = os.Remove(o.socket)
	ln, err := net.Listen("unix", o.socket)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.socket, err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(16 << 20))
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	runtimeapi.RegisterImageServiceServer(srv, &imageService{rt: rt})

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		logf("%s: stopping every container and sandbox", sig)
		srv.Stop()
	}()
	logf("serving CRI on %s, streams on %s, catalog %s (%d images), CNI %s",
		o.socket, cfg.Addr, o.catalog, len(images.entries), cniSummary(o))
	serveErr := srv.Serve(ln)
	rt.shutdown(context.Background())
	_ = os.Remove(o.socket)
	if serveErr != nil && !strings.Contains(serveErr.Error(), "closed") {
		return serveErr
	}
	return nil
}

func cniSummary(o options) string {
	if o.cniConfDir == "" {
		return "off (host network only)"
	}
	return fmt.Sprintf("conf %s, plugins %s", o.cniConfDir, o.cniBinDir)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "netpol-cri: "+format+"\n", args...)
}
