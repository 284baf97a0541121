package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// cniNetwork calls the CNI plugins as a CRI runtime does (docs/sources.md §17): the first
// network configuration of the directory by file name (a single-plugin .conf is wrapped into a
// list), interface eth0, the pod's identity in CNI_ARGS, host ports as the portMappings
// capability; and the loopback plugin on `lo` as a network of its own. libcni keeps each attachment in its cache directory, so DEL
// gets the same configuration and result that ADD had.
type cniNetwork struct {
	confDir string
	cni     *libcni.CNIConfig
}

var loopbackConf = []byte(`{"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}`)

func newCNINetwork(o options) *cniNetwork {
	return &cniNetwork{confDir: o.cniConfDir,
		cni: libcni.NewCNIConfigWithCacheDir([]string{o.cniBinDir}, filepath.Join(o.root, "cni-cache"), nil)}
}

// conf loads the network configuration, read again for every sandbox (a changed directory
// takes effect for the next pod).
func (n *cniNetwork) conf() (*libcni.NetworkConfigList, error) {
	if n.confDir == "" {
		return nil, fmt.Errorf("no CNI configuration directory (--cni-conf-dir)")
	}
	files, err := libcni.ConfFiles(n.confDir, []string{".conflist", ".conf", ".json"})
	if err != nil {
		return nil, fmt.Errorf("reading CNI configurations in %s: %w", n.confDir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no network configuration in %s", n.confDir)
	}
	first := files[0] // ConfFiles returns them sorted by name
	if strings.HasSuffix(first, ".conflist") {
		return libcni.ConfListFromFile(first)
	}
	one, err := libcni.ConfFromFile(first)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(one)
}

func (n *cniNetwork) ready() error {
	_, err := n.conf()
	return err
}

func (n *cniNetwork) runtimeConf(sb *sandbox, ifName string) *libcni.RuntimeConf {
	md := sb.config.GetMetadata()
	rc := &libcni.RuntimeConf{
		ContainerID: sb.id,
		NetNS:       sb.netnsPath,
		IfName:      ifName,
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", md.GetNamespace()},
			{"K8S_POD_NAME", md.GetName()},
			{"K8S_POD_INFRA_CONTAINER_ID", sb.id},
			{"K8S_POD_UID", md.GetUid()},
		},
	}
	if ifName != "lo" {
		var ports []map[string]any
		for _, p := range sb.config.GetPortMappings() {
			if p.GetHostPort() <= 0 {
				continue
			}
			ports = append(ports, map[string]any{"hostPort": p.GetHostPort(),
				"containerPort": p.GetContainerPort(), "hostIP": p.GetHostIp(),
				"protocol": strings.ToLower(runtimeapi.Protocol_name[int32(p.GetProtocol())])})
		}
		if len(ports) > 0 {
			rc.CapabilityArgs = map[string]any{"portMappings": ports}
		}
	}
	return rc
}

// setup runs ADD for the loopback and the pod network; returns the pod's IPs (first is primary).
func (n *cniNetwork) setup(ctx context.Context, sb *sandbox) ([]string, error) {
	lo, err := libcni.ConfListFromBytes(loopbackConf)
	if err != nil {
		return nil, err
	}
	if _, err := n.cni.AddNetworkList(ctx, lo, n.runtimeConf(sb, "lo")); err != nil {
		return nil, fmt.Errorf("CNI ADD of the loopback: %w", err)
	}
	list, err := n.conf()
	if err != nil {
		return nil, err
	}
	res, err := n.cni.AddNetworkList(ctx, list, n.runtimeConf(sb, "eth0"))
	if err != nil {
		return nil, fmt.Errorf("CNI ADD of network %q: %w", list.Name, err)
	}
	r100, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result of network %q: %w", list.Name, err)
	}
	var ips []string
	for _, ip := range r100.IPs {
		if ip.Interface != nil && *ip.Interface >= 0 && *ip.Interface < len(r100.Interfaces) &&
			r100.Interfaces[*ip.Interface].Sandbox == "" {
			continue // an address on the host side
		}
		ips = append(ips, ip.Address.IP.String())
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("CNI network %q gave the pod no address", list.Name)
	}
	return ips, nil
}

// teardown runs DEL for the pod network and the loopback, with the configuration ADD used.
func (n *cniNetwork) teardown(ctx context.Context, sb *sandbox) error {
	var errs []string
	list, err := n.conf()
	if err == nil {
		if cached, _, cerr := n.cni.GetNetworkListCachedConfig(list, n.runtimeConf(sb, "eth0")); cerr == nil && cached != nil {
			if l, perr := libcni.ConfListFromBytes(cached); perr == nil {
				list = l
			}
		}
		if err := n.cni.DelNetworkList(ctx, list, n.runtimeConf(sb, "eth0")); err != nil {
			errs = append(errs, fmt.Sprintf("CNI DEL of network %q: %v", list.Name, err))
		}
	} else {
		errs = append(errs, err.Error())
	}
	if lo, err := libcni.ConfListFromBytes(loopbackConf); err == nil {
		if err := n.cni.DelNetworkList(ctx, lo, n.runtimeConf(sb, "lo")); err != nil {
			errs = append(errs, fmt.Sprintf("CNI DEL of the loopback: %v", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
