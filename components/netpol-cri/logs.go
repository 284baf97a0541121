package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// criLog writes a container's output in the CRI log format the kubelet reads:
// `<RFC 3339 time with nanoseconds> <stdout|stderr> <F|P> <content>`, one line per line of
// output, P (partial) for a piece of a line longer than the read buffer.
type criLog struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

func openCRILog(path string) (*criLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	l := &criLog{path: path}
	return l, l.reopen()
}

func (l *criLog) reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
	}
	l.f = f
	return nil
}

func (l *criLog) write(stream string, content []byte, full bool) {
	tag := "P"
	if full {
		tag = "F"
	}
	line := make([]byte, 0, len(content)+64)
	line = time.Now().UTC().AppendFormat(line, time.RFC3339Nano)
	line = append(line, ' ')
	line = append(line, stream...)
	line = append(line, ' ')
	line = append(line, tag...)
	line = append(line, ' ')
	line = append(line, content...)
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		_, _ = l.f.Write(line)
	}
}

func (l *criLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// maxLogLine is the longest piece of a line written as one log entry (longer lines are split
// into partial entries).
const maxLogLine = 16 * 1024

// copyOutput reads r until EOF, handing every chunk at once to raw (attach sees output as it
// comes, with or without a newline) and every line to line (without its newline, full=true;
// a piece of a longer line with full=false; what is left at EOF counts as a full line).
func copyOutput(r io.Reader, raw func([]byte), line func(content []byte, full bool)) {
	buf := make([]byte, 32*1024)
	var pending []byte
	for {
		n, err := r.Read(buf)
		if n > 0 {
			raw(buf[:n])
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				switch {
				case i > maxLogLine || (i < 0 && len(pending) >= maxLogLine):
					line(pending[:maxLogLine], false)
					pending = pending[maxLogLine:]
					continue
				case i >= 0:
					line(pending[:i], true)
					pending = pending[i+1:]
					continue
				}
				break
			}
			pending = append([]byte(nil), pending...)
		}
		if err != nil {
			if len(pending) > 0 {
				line(pending, true)
			}
			return
		}
	}
}

// broadcaster hands a container's output to whoever is attached (best effort: a slow reader
// misses nothing, it only delays the others).
type broadcaster struct {
	mu     sync.Mutex
	subs   map[int]map[string]io.Writer
	next   int
	closed chan struct{}
}

func newBroadcaster() *broadcaster {
	return &broadcaster{subs: map[int]map[string]io.Writer{}, closed: make(chan struct{})}
}

func (b *broadcaster) subscribe(out, errw io.Writer) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.next
	b.next++
	b.subs[id] = map[string]io.Writer{"stdout": out, "stderr": errw}
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, id)
	}
}

func (b *broadcaster) write(stream string, data []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.subs {
		if w := s[stream]; w != nil {
			_, _ = w.Write(data)
		}
	}
}

func (b *broadcaster) close() {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
}
