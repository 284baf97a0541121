package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/kubelet/pkg/cri/streaming"
)

// criRuntime is the RuntimeService. Every call takes mu for the maps only; slow work (CNI,
// starting and stopping processes) runs outside it, on one sandbox or container at a time.
type criRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	opts   options
	images *catalog
	cni    *cniNetwork
	stream streaming.Server

	mu         sync.Mutex
	sandboxes  map[string]*sandbox
	containers map[string]*container
}

func newRuntime(o options, images *catalog) *criRuntime {
	return &criRuntime{
		opts:       o,
		images:     images,
		cni:        newCNINetwork(o),
		sandboxes:  map[string]*sandbox{},
		containers: map[string]*container{},
	}
}

func newID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func notFound(kind, id string) error {
	return status.Errorf(codes.NotFound, "%s %q not found", kind, id)
}

// lookup finds a sandbox or container by its full id or a unique prefix, as crictl allows.
func lookup[T any](m map[string]*T, id string) (string, *T) {
	if v, ok := m[id]; ok {
		return id, v
	}
	var found string
	if len(id) >= 4 {
		for k := range m {
			if len(k) >= len(id) && k[:len(id)] == id {
				if found != "" {
					return "", nil
				}
				found = k
			}
		}
	}
	if found == "" {
		return "", nil
	}
	return found, m[found]
}

func (r *criRuntime) getSandbox(id string) (*sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, sb := lookup(r.sandboxes, id); sb != nil {
		return sb, nil
	}
	return nil, notFound("pod sandbox", id)
}

func (r *criRuntime) getContainer(id string) (*container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, c := lookup(r.containers, id); c != nil {
		return c, nil
	}
	return nil, notFound("container", id)
}

func (r *criRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "netpol-cri",
		RuntimeVersion: Version, RuntimeApiVersion: "v1"}, nil
}

func (r *criRuntime) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netReady := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	if err := r.cni.ready(); err != nil {
		netReady.Status = false
		netReady.Reason = "NetworkPluginNotReady"
		netReady.Message = err.Error()
	}
	return &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true}, netReady}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}}},
		Features:        &runtimeapi.RuntimeFeatures{},
	}, nil
}

// RuntimeConfig names the cgroupfs driver because the kubelet asks for one; nothing here ever
// creates a cgroup (the kubelet runs with cgroupsPerQOS false).
func (r *criRuntime) RuntimeConfig(context.Context, *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{
		CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

func (r *criRuntime) UpdateRuntimeConfig(_ context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	if cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr(); cidr != "" {
		logf("the kubelet says the pod CIDR is %s (the CNI configuration decides addresses)", cidr)
	}
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}

// UpdateContainerResources accepts and ignores the request: without cgroups there are no limits.
func (r *criRuntime) UpdateContainerResources(_ context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	if _, err := r.getContainer(req.GetContainerId()); err != nil {
		return nil, err
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// --- stats: no cgroups, so nothing is measured; the entries exist, the figures are absent ---

func (r *criRuntime) containerStats(c *container) *runtimeapi.ContainerStats {
	now := time.Now().UnixNano()
	return &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: c.id, Metadata: c.config.GetMetadata(),
			Labels: c.config.GetLabels(), Annotations: c.config.GetAnnotations()},
		Cpu:           &runtimeapi.CpuUsage{Timestamp: now},
		Memory:        &runtimeapi.MemoryUsage{Timestamp: now},
		WritableLayer: &runtimeapi.FilesystemUsage{Timestamp: now, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: r.opts.root}},
	}
}

func (r *criRuntime) ContainerStats(_ context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
	c, err := r.getContainer(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ContainerStatsResponse{Stats: r.containerStats(c)}, nil
}

func (r *criRuntime) ListContainerStats(_ context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	var out []*runtimeapi.ContainerStats
	for _, c := range r.listContainers(&runtimeapi.ContainerFilter{Id: f.GetId(),
		PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}) {
		out = append(out, r.containerStats(c))
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

func (r *criRuntime) sandboxStats(sb *sandbox) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	var cs []*runtimeapi.ContainerStats
	for _, c := range r.listContainers(&runtimeapi.ContainerFilter{PodSandboxId: sb.id}) {
		cs = append(cs, r.containerStats(c))
	}
	return &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.id, Metadata: sb.config.GetMetadata(),
			Labels: sb.config.GetLabels(), Annotations: sb.config.GetAnnotations()},
		Linux: &runtimeapi.LinuxPodSandboxStats{Cpu: &runtimeapi.CpuUsage{Timestamp: now},
			Memory: &runtimeapi.MemoryUsage{Timestamp: now}, Containers: cs},
	}
}

func (r *criRuntime) PodSandboxStats(_ context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := r.getSandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: r.sandboxStats(sb)}, nil
}

func (r *criRuntime) ListPodSandboxStats(_ context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	var out []*runtimeapi.PodSandboxStats
	for _, sb := range r.listSandboxes(&runtimeapi.PodSandboxFilter{Id: f.GetId(), LabelSelector: f.GetLabelSelector()}) {
		out = append(out, r.sandboxStats(sb))
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}

func (r *criRuntime) ListMetricDescriptors(context.Context, *runtimeapi.ListMetricDescriptorsRequest) (*runtimeapi.ListMetricDescriptorsResponse, error) {
	return &runtimeapi.ListMetricDescriptorsResponse{}, nil
}

func (r *criRuntime) ListPodSandboxMetrics(context.Context, *runtimeapi.ListPodSandboxMetricsRequest) (*runtimeapi.ListPodSandboxMetricsResponse, error) {
	return &runtimeapi.ListPodSandboxMetricsResponse{}, nil
}

// shutdown stops every container and tears every sandbox down (the runtime leaves nothing).
func (r *criRuntime) shutdown(ctx context.Context) {
	for _, sb := range r.listSandboxes(nil) {
		if _, err := r.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.id}); err != nil {
			logf("stopping sandbox %s: %v", sb.id, err)
		}
		if _, err := r.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.id}); err != nil {
			logf("removing sandbox %s: %v", sb.id, err)
		}
	}
}

func matchLabels(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
