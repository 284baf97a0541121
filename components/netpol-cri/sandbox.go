package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sandbox is a pod: its namespaces and its files, no process of its own (no pause container:
// the namespaces are kept by bind mounts).
type sandbox struct {
	id        string
	config    *runtimeapi.PodSandboxConfig
	handler   string
	created   time.Time
	dir       string // <root>/sandboxes/<id>: uts, ipc, resolv.conf, hostname
	netnsPath string // "" with the node's network (hostNetwork)
	utsPath   string // "" with the node's UTS namespace
	ipcPath   string // "" with the node's IPC namespace
	ips       []string

	mu    sync.Mutex  // serialises stop and remove of this sandbox; guards netUp
	ready atomic.Bool // read by List without mu (the maps' lock is taken inside mu)
	netUp bool        // CNI ADD done and not yet undone
}

func (sb *sandbox) nsMode() *runtimeapi.NamespaceOption {
	return sb.config.GetLinux().GetSecurityContext().GetNamespaceOptions()
}

func (r *criRuntime) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" {
		return nil, fmt.Errorf("RunPodSandbox: config.metadata.name is empty")
	}
	id := newID()
	sb := &sandbox{id: id, config: cfg, handler: req.GetRuntimeHandler(), created: time.Now(),
		dir: filepath.Join(r.opts.root, "sandboxes", id)}
	if err := os.MkdirAll(sb.dir, 0o755); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			sb.ready.Store(true) // so that teardown undoes what was done
			_ = r.teardownSandbox(context.Background(), sb)
			_ = r.removeSandboxFiles(sb)
		}
	}()
	mode := sb.nsMode()
	hostNet := mode.GetNetwork() == runtimeapi.NamespaceMode_NODE
	if !hostNet {
		sb.netnsPath = filepath.Join(r.opts.netnsDir, r.opts.netnsName+"s"+id[:12])
		sb.utsPath = filepath.Join(sb.dir, "uts")
	}
	if mode.GetIpc() != runtimeapi.NamespaceMode_NODE {
		sb.ipcPath = filepath.Join(sb.dir, "ipc")
	}
	if err := checkSysctls(cfg.GetLinux().GetSysctls(), hostNet, sb.ipcPath == ""); err != nil {
		return nil, fmt.Errorf("pod %s: %w", podName(cfg), err)
	}
	if err := newNamespaces(sb.netnsPath, sb.utsPath, sb.ipcPath, cfg.GetHostname(), cfg.GetLinux().GetSysctls()); err != nil {
		return nil, fmt.Errorf("creating the namespaces of pod %s: %w", podName(cfg), err)
	}
	if err := writePodFiles(sb, hostNet); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.sandboxes[id] = sb
	r.mu.Unlock()
	sb.ready.Store(true)
	if !hostNet {
		ips, err := r.cni.setup(ctx, sb)
		sb.netUp = true // a failed ADD is undone by DEL too (the CNI contract)
		if err != nil {
			r.mu.Lock()
			delete(r.sandboxes, id)
			r.mu.Unlock()
			return nil, fmt.Errorf("setting up the network of pod %s: %w", podName(cfg), err)
		}
		sb.ips = ips
	}
	ok = true
	logf("sandbox %s of pod %s: ready, IPs %v", id[:12], podName(cfg), sb.ips)
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func podName(cfg *runtimeapi.PodSandboxConfig) string {
	return cfg.GetMetadata().GetNamespace() + "/" + cfg.GetMetadata().GetName()
}

// checkSysctls refuses every sysctl that is not in a namespace the pod has of its own: writing
// any other would change the node (or the machine).
func checkSysctls(sysctls map[string]string, hostNet, hostIPC bool) error {
	for k := range sysctls {
		switch {
		case strings.HasPrefix(k, "net."):
			if hostNet {
				return fmt.Errorf("sysctl %s: the pod uses the node's network namespace", k)
			}
		case strings.HasPrefix(k, "kernel.shm"), strings.HasPrefix(k, "kernel.msg"),
			k == "kernel.sem", strings.HasPrefix(k, "fs.mqueue."):
			if hostIPC {
				return fmt.Errorf("sysctl %s: the pod uses the node's IPC namespace", k)
			}
		default:
			return fmt.Errorf("sysctl %s is not in a namespace of the pod's own", k)
		}
		if strings.Contains(k, "/") || strings.Contains(k, "..") {
			return fmt.Errorf("sysctl %q: not a sysctl name", k)
		}
	}
	return nil
}

// newNamespaces makes new network, UTS and IPC namespaces (for each path that is not empty),
// sets the pod's sysctls in them and keeps each alive by bind-mounting it on its path. It
// unshares on a thread of its own that is never given back to the Go scheduler: the thread ends
// with the goroutine, so no other goroutine ever runs in these namespaces. (The files under
// /proc/sys/net and /proc/sys/kernel/{shm,msg,sem} are those of the namespaces of the thread
// that opens them.)
func newNamespaces(netPath, utsPath, ipcPath, hostname string, sysctls map[string]string) error {
	kinds := []struct {
		flag int
		name string
		path string
	}{{unix.CLONE_NEWNET, "net", netPath}, {unix.CLONE_NEWUTS, "uts", utsPath}, {unix.CLONE_NEWIPC, "ipc", ipcPath}}
	flags := 0
	for _, k := range kinds {
		if k.path != "" {
			flags |= k.flag
		}
	}
	if flags == 0 {
		return nil
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked, see above
		if err := unix.Unshare(flags); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if utsPath != "" && hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				errc <- fmt.Errorf("sethostname %q: %w", hostname, err)
				return
			}
		}
		for k, v := range sysctls {
			p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(p, []byte(v), 0); err != nil {
				errc <- fmt.Errorf("sysctl %s=%s: %w", k, v, err)
				return
			}
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/", os.Getpid(), unix.Gettid())
		for _, k := range kinds {
			if k.path == "" {
				continue
			}
			f, err := os.OpenFile(k.path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
			if err != nil {
				errc <- err
				return
			}
			f.Close()
			if err := unix.Mount(self+k.name, k.path, "", unix.MS_BIND, ""); err != nil {
				_ = os.Remove(k.path)
				errc <- fmt.Errorf("bind-mounting the %s namespace on %s: %w", k.name, k.path, err)
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// dropNamespace unmounts and removes one namespace file; absent is fine.
func dropNamespace(path string) error {
	if path == "" {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// writePodFiles writes the pod's resolv.conf (from the kubelet's DNS config) and hostname,
// which every container of the pod gets bind-mounted.
func writePodFiles(sb *sandbox, hostNet bool) error {
	dns := sb.config.GetDnsConfig()
	var resolv []byte
	if len(dns.GetServers())+len(dns.GetSearches())+len(dns.GetOptions()) == 0 {
		host, err := os.ReadFile("/etc/resolv.conf")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		resolv = host
	} else {
		var b strings.Builder
		if len(dns.GetSearches()) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
		}
		for _, s := range dns.GetServers() {
			fmt.Fprintf(&b, "nameserver %s\n", s)
		}
		if len(dns.GetOptions()) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
		}
		resolv = []byte(b.String())
	}
	if err := os.WriteFile(filepath.Join(sb.dir, "resolv.conf"), resolv, 0o644); err != nil {
		return err
	}
	hostname := sb.config.GetHostname()
	if hostNet || hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return err
		}
		hostname = h
	}
	return os.WriteFile(filepath.Join(sb.dir, "hostname"), []byte(hostname+"\n"), 0o644)
}

// teardownSandbox stops the sandbox's containers, undoes its network and deletes its network
// namespace. Idempotent.
func (r *criRuntime) teardownSandbox(ctx context.Context, sb *sandbox) error {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	var errs []string
	for _, c := range r.listContainers(&runtimeapi.ContainerFilter{PodSandboxId: sb.id}) {
		if err := r.stopContainer(c, 0); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if sb.netUp {
		if err := r.cni.teardown(ctx, sb); err != nil {
			errs = append(errs, err.Error())
		} else {
			sb.netUp = false
		}
	}
	if !sb.netUp {
		if err := dropNamespace(sb.netnsPath); err != nil {
			errs = append(errs, err.Error())
		}
	}
	sb.ready.Store(false)
	if len(errs) > 0 {
		return fmt.Errorf("stopping pod sandbox %s: %s", sb.id, strings.Join(errs, "; "))
	}
	return nil
}

func (r *criRuntime) removeSandboxFiles(sb *sandbox) error {
	for _, p := range []string{sb.utsPath, sb.ipcPath, sb.netnsPath} {
		if err := dropNamespace(p); err != nil {
			return err
		}
	}
	return os.RemoveAll(sb.dir)
}

func (r *criRuntime) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return &runtimeapi.StopPodSandboxResponse{}, nil // stopping what is gone is done (CRI)
	}
	if err := r.teardownSandbox(ctx, sb); err != nil {
		return nil, err
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (r *criRuntime) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return &runtimeapi.RemovePodSandboxResponse{}, nil
	}
	if err := r.teardownSandbox(ctx, sb); err != nil {
		return nil, err
	}
	for _, c := range r.listContainers(&runtimeapi.ContainerFilter{PodSandboxId: sb.id}) {
		if err := r.removeContainer(c); err != nil {
			return nil, err
		}
	}
	if err := r.removeSandboxFiles(sb); err != nil {
		return nil, fmt.Errorf("removing pod sandbox %s: %w", sb.id, err)
	}
	r.mu.Lock()
	delete(r.sandboxes, sb.id)
	r.mu.Unlock()
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (sb *sandbox) state() runtimeapi.PodSandboxState {
	if sb.ready.Load() {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

func (r *criRuntime) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	st := &runtimeapi.PodSandboxStatus{
		Id: sb.id, Metadata: sb.config.GetMetadata(), State: sb.state(),
		CreatedAt: sb.created.UnixNano(), Labels: sb.config.GetLabels(),
		Annotations: sb.config.GetAnnotations(), RuntimeHandler: sb.handler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{Options: &runtimeapi.NamespaceOption{
			Network: sb.nsMode().GetNetwork(), Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: sb.nsMode().GetIpc()}}},
	}
	if len(sb.ips) > 0 {
		st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: sb.ips[0]}
		for _, ip := range sb.ips[1:] {
			st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
		}
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: st, Timestamp: time.Now().UnixNano()}
	if req.GetVerbose() {
		resp.Info = map[string]string{"netns": sb.netnsPath, "dir": sb.dir}
	}
	return resp, nil
}

func (r *criRuntime) listSandboxes(f *runtimeapi.PodSandboxFilter) []*sandbox {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*sandbox
	for _, id := range sortedKeys(r.sandboxes) {
		sb := r.sandboxes[id]
		if f.GetId() != "" && !strings.HasPrefix(id, f.GetId()) {
			continue
		}
		if f.GetState() != nil && sb.state() != f.GetState().GetState() {
			continue
		}
		if !matchLabels(f.GetLabelSelector(), sb.config.GetLabels()) {
			continue
		}
		out = append(out, sb)
	}
	return out
}

func (r *criRuntime) ListPodSandbox(_ context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	var items []*runtimeapi.PodSandbox
	for _, sb := range r.listSandboxes(req.GetFilter()) {
		items = append(items, &runtimeapi.PodSandbox{Id: sb.id, Metadata: sb.config.GetMetadata(),
			State: sb.state(), CreatedAt: sb.created.UnixNano(), Labels: sb.config.GetLabels(),
			Annotations: sb.config.GetAnnotations(), RuntimeHandler: sb.handler})
	}
	return &runtimeapi.ListPodSandboxResponse{Items: items}, nil
}
