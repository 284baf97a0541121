package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The local image catalog: no registry, no layers. The harness writes a JSON file
//
//	{"images": {"registry.k8s.io/e2e-test-images/agnhost:2.66.1": {
//	    "binds": [{"source": "/abs/host/path", "target": "/abs/container/path"}, ...],
//	    "entrypoint": ["/agnhost"], "cmd": [], "env": ["PATH=..."], "workdir": "/", "user": "0"}}}
//
// and an image's root filesystem is an empty tmpfs with every bind mounted read-only at its
// target, in order (a source that is a symbolic link becomes the same link). Pulling an image
// checks that it is in the catalog; pulling anything else fails, naming the image.

type bindSpec struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

type imageEntry struct {
	Binds      []bindSpec `json:"binds"`
	Entrypoint []string   `json:"entrypoint"`
	Cmd        []string   `json:"cmd"`
	Env        []string   `json:"env"`
	Workdir    string     `json:"workdir"`
	User       string     `json:"user"`

	ref string
	id  string
}

type catalog struct {
	path    string
	entries map[string]*imageEntry // by normalised reference

	mu     sync.Mutex
	pulled map[string]time.Time // image id -> when pulled
}

func loadCatalog(path string) (*catalog, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the image catalog: %w", err)
	}
	var doc struct {
		Images map[string]*imageEntry `json:"images"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("image catalog %s: %w", path, err)
	}
	c := &catalog{path: path, entries: map[string]*imageEntry{}, pulled: map[string]time.Time{}}
	for ref, e := range doc.Images {
		where := fmt.Sprintf("image catalog %s: images[%q]", path, ref)
		if e == nil {
			return nil, fmt.Errorf("%s: is null, want an object", where)
		}
		if len(e.Entrypoint) == 0 && len(e.Cmd) == 0 {
			return nil, fmt.Errorf("%s: neither entrypoint nor cmd is set", where)
		}
		for i, b := range e.Binds {
			if !filepath.IsAbs(b.Source) || !filepath.IsAbs(b.Target) {
				return nil, fmt.Errorf("%s.binds[%d]: source and target must be absolute paths, got %q -> %q", where, i, b.Source, b.Target)
			}
			if _, err := os.Lstat(b.Source); err != nil {
				return nil, fmt.Errorf("%s.binds[%d].source: %v", where, i, err)
			}
		}
		norm := normaliseRef(ref)
		canonical, _ := json.Marshal(e)
		sum := sha256.Sum256(append([]byte(norm+"\x00"), canonical...))
		e.ref, e.id = norm, "sha256:"+hex.EncodeToString(sum[:])
		c.entries[norm] = e
	}
	return c, nil
}

// normaliseRef writes a reference the way registries are named: `busybox` is
// `docker.io/library/busybox:latest`, a reference without tag or digest gets `:latest`.
func normaliseRef(ref string) string {
	name, suffix := ref, ""
	if i := strings.Index(ref, "@"); i >= 0 {
		name, suffix = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, suffix = ref[:i], ref[i:]
	}
	if suffix == "" {
		suffix = ":latest"
	}
	first, _, hasSlash := strings.Cut(name, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		if !hasSlash {
			name = "library/" + name
		}
		name = "docker.io/" + name
	}
	return name + suffix
}

// find resolves a reference or an image id to a catalog entry.
func (c *catalog) find(ref string) *imageEntry {
	if e, ok := c.entries[normaliseRef(ref)]; ok {
		return e
	}
	for _, e := range c.entries {
		if e.id == ref || strings.TrimPrefix(e.id, "sha256:") == ref {
			return e
		}
	}
	return nil
}

// pulledEntry is the entry of a pulled image, or nil.
func (c *catalog) pulledEntry(ref string) *imageEntry {
	e := c.find(ref)
	if e == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pulled[e.id]; !ok {
		return nil
	}
	return e
}

func (e *imageEntry) api() *runtimeapi.Image {
	img := &runtimeapi.Image{Id: e.id, RepoTags: []string{e.ref}, Size: 1,
		Spec: &runtimeapi.ImageSpec{Image: e.id}}
	if e.User != "" {
		var uid int64
		if _, err := fmt.Sscanf(e.User, "%d", &uid); err == nil {
			img.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			img.Username = e.User
		}
	}
	return img
}

type imageService struct {
	runtimeapi.UnimplementedImageServiceServer
	rt *criRuntime
}

func (s *imageService) ListImages(_ context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	c := s.rt.images
	want := req.GetFilter().GetImage().GetImage()
	var out []*runtimeapi.Image
	for _, ref := range sortedKeys(c.entries) {
		e := c.entries[ref]
		if c.pulledEntry(ref) == nil {
			continue
		}
		if want != "" && c.find(want) != e {
			continue
		}
		out = append(out, e.api())
	}
	return &runtimeapi.ListImagesResponse{Images: out}, nil
}

func (s *imageService) ImageStatus(_ context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	e := s.rt.images.pulledEntry(req.GetImage().GetImage())
	if e == nil {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: e.api()}, nil
}

func (s *imageService) PullImage(_ context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	c := s.rt.images
	ref := req.GetImage().GetImage()
	e := c.find(ref)
	if e == nil {
		return nil, status.Errorf(codes.NotFound, "image %q is not in the local image catalog %s (netpol-cri pulls from no registry; catalog: %s)",
			ref, c.path, strings.Join(sortedKeys(c.entries), ", "))
	}
	c.mu.Lock()
	c.pulled[e.id] = time.Now()
	c.mu.Unlock()
	return &runtimeapi.PullImageResponse{ImageRef: e.id}, nil
}

func (s *imageService) RemoveImage(_ context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	c := s.rt.images
	if e := c.find(req.GetImage().GetImage()); e != nil {
		c.mu.Lock()
		delete(c.pulled, e.id)
		c.mu.Unlock()
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

func (s *imageService) ImageFsInfo(context.Context, *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	fs := &runtimeapi.FilesystemUsage{Timestamp: time.Now().UnixNano(),
		FsId:      &runtimeapi.FilesystemIdentifier{Mountpoint: s.rt.opts.root},
		UsedBytes: &runtimeapi.UInt64Value{}, InodesUsed: &runtimeapi.UInt64Value{}}
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{fs},
		ContainerFilesystems: []*runtimeapi.FilesystemUsage{fs}}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
