package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const listRV = 1_000_000

type server struct {
	items   [][]byte // list items (no kind/apiVersion), "resourceVersion":"1000000"
	events  [][]byte // watch lines, each ending in "\n"
	framing string   // "apiserver" or "coalesced"
	rate    float64
	batch   int

	initialOnce sync.Once
	initial     [][]byte

	mu         sync.Mutex
	goCh       chan struct{}
	watchTaken bool
	stats      stats
}

type stats struct {
	FirstByte  *float64  `json:"first_byte"`
	LastByte   *float64  `json:"last_byte"`
	WatchBytes int       `json:"watch_bytes"`
	Events     int       `json:"events"`
	Lists      int       `json:"lists"`
	Watches    int       `json:"watches"`
	BatchTimes []float64 `json:"batch_times"`
	Batch      int       `json:"batch"`
	Framing    string    `json:"framing"`
	TLS        bool      `json:"tls"`
}

func splitFile(path string, keepNewline bool) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	var out [][]byte
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, data)
			break
		}
		if keepNewline {
			out = append(out, data[:i+1])
		} else {
			out = append(out, data[:i])
		}
		data = data[i+1:]
	}
	return out
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	itemsPath := fs.String("items", "", "list items, one per line")
	eventsPath := fs.String("events", "", "watch lines, one per line")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a self-signed CA")
	caOut := fs.String("ca-out", "", "write the CA certificate (PEM) here")
	framing := fs.String("framing", "apiserver", "apiserver (one chunk per event) or coalesced (256 KB chunks)")
	rate := fs.Float64("rate", 0, "events/s (0: as fast as possible)")
	noGo := fs.Bool("no-go", false, "send the watch body at once")
	fs.Parse(args)

	s := &server{framing: *framing, rate: *rate, goCh: make(chan struct{})}
	if *itemsPath != "" {
		s.items = splitFile(*itemsPath, false)
	}
	if *eventsPath != "" {
		s.events = splitFile(*eventsPath, true)
	}
	if *rate > 0 {
		s.batch = max(1, int(*rate/1000+0.5)) // one batch per millisecond
	}
	for _, e := range s.events {
		s.stats.WatchBytes += len(e)
	}
	s.stats.Events = len(s.events)
	s.stats.Batch = s.batch
	s.stats.Framing = s.framing
	s.stats.TLS = *useTLS
	s.stats.BatchTimes = []float64{}
	if *noGo {
		close(s.goCh)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Handler: s,
		// HTTP/1.1 only, for every peer (the apiserver would offer h2 to those that ask).
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		Protocols:    &protocols,
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	if *useTLS {
		cert, caPEM := selfSigned()
		if *caOut != "" {
			if err := os.WriteFile(*caOut, caPEM, 0o644); err != nil {
				log.Fatal(err)
			}
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}}
		log.Fatal(srv.ServeTLS(ln, "", ""))
	}
	log.Fatal(srv.Serve(ln))
}

// selfSigned makes a CA and a leaf for 127.0.0.1/localhost, ECDSA P-256 like testenv's.
func selfSigned() (tls.Certificate, []byte) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "bench-server"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	return tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: key}, caPEM
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch path := strings.TrimRight(r.URL.Path, "/"); path {
	case "/_go":
		s.mu.Lock()
		select {
		case <-s.goCh:
		default:
			close(s.goCh)
		}
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{})
	case "/_reset":
		s.mu.Lock()
		s.watchTaken = false
		s.goCh = make(chan struct{})
		s.stats.FirstByte, s.stats.LastByte = nil, nil
		s.stats.Lists, s.stats.Watches = 0, 0
		s.stats.BatchTimes = []float64{}
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{})
	case "/_stats":
		s.mu.Lock()
		st := s.stats
		s.mu.Unlock()
		writeJSON(w, 200, st)
	case "/api/v1/namespaces/default/pods", "/api/v1/pods":
		if v := q.Get("watch"); v == "true" || v == "1" || v == "True" {
			s.watch(w, r, q.Get("sendInitialEvents") == "true")
			return
		}
		s.list(w, q.Get("continue"), q.Get("limit"))
	case "/version":
		writeJSON(w, 200, map[string]string{"major": "1", "minor": "37", "gitVersion": "v1.37.2", "platform": "linux"})
	case "/api":
		writeJSON(w, 200, map[string]any{"kind": "APIVersions", "versions": []string{"v1"},
			"serverAddressByClientCIDRs": []map[string]string{{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}}})
	case "/apis":
		writeJSON(w, 200, map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": []any{}})
	case "/api/v1":
		pods := map[string]any{"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
			"verbs": []string{"create", "delete", "get", "list", "patch", "update", "watch"}, "shortNames": []string{"po"}}
		writeJSON(w, 200, map[string]any{"kind": "APIResourceList", "groupVersion": "v1", "resources": []any{pods}})
	default:
		writeJSON(w, 404, map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
	}
}

func (s *server) list(w http.ResponseWriter, cont, lim string) {
	s.mu.Lock()
	s.stats.Lists++
	s.mu.Unlock()
	start, _ := strconv.Atoi(cont)
	limit, _ := strconv.Atoi(lim)
	if limit <= 0 {
		limit = len(s.items)
	}
	start = min(start, len(s.items))
	end := min(start+limit, len(s.items))
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"%d"`, listRV)
	if end < len(s.items) {
		fmt.Fprintf(&b, `,"continue":"%d","remainingItemCount":%d`, end, len(s.items)-end)
	}
	b.WriteString(`},"items":[`)
	for i := start; i < end; i++ {
		if i > start {
			b.WriteByte(',')
		}
		b.Write(s.items[i])
	}
	b.WriteString("]}")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write(b.Bytes())
}

func (s *server) initialEvents() [][]byte {
	s.initialOnce.Do(func() {
		for _, it := range s.items {
			line := make([]byte, 0, len(it)+64)
			line = append(line, `{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1",`...)
			line = append(line, it[1:]...)
			line = append(line, "}\n"...)
			s.initial = append(s.initial, line)
		}
		s.initial = append(s.initial, []byte(fmt.Sprintf(
			`{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"%d","annotations":{"k8s.io/initial-events-end":"true"}}}}`+"\n", listRV)))
	})
	return s.initial
}

func (s *server) watch(w http.ResponseWriter, r *http.Request, initial bool) {
	fl := w.(http.Flusher)
	s.mu.Lock()
	s.stats.Watches++
	if initial {
		s.stats.Lists++
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(200)
	fl.Flush()
	if initial {
		s.writeAll(w, s.initialEvents())
		fl.Flush()
	}
	s.mu.Lock()
	first := !s.watchTaken
	s.watchTaken = true
	goCh := s.goCh
	s.mu.Unlock()
	if first {
		select {
		case <-goCh:
			s.sendEvents(w, fl)
		case <-r.Context().Done():
			return
		}
	}
	<-r.Context().Done() // idle until the client goes away
}

// writeAll writes lines as the apiserver does (one Write each), or coalesced into
// ~256 KB Writes of whole lines (the old benchmark framing). No Flush: the caller
// flushes once nothing more is pending.
func (s *server) writeAll(w http.ResponseWriter, lines [][]byte) {
	if s.framing != "coalesced" {
		for _, l := range lines {
			if _, err := w.Write(l); err != nil {
				return
			}
		}
		return
	}
	buf := make([]byte, 0, 256*1024+8192)
	for _, l := range lines {
		buf = append(buf, l...)
		if len(buf) >= 256*1024 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		w.Write(buf)
	}
}

func (s *server) sendEvents(w http.ResponseWriter, fl http.Flusher) {
	t := mono()
	s.mu.Lock()
	s.stats.FirstByte = &t
	s.mu.Unlock()
	if s.rate <= 0 {
		s.writeAll(w, s.events) // a burst: the result channel is never empty until the end
		fl.Flush()
	} else {
		period := float64(s.batch) / s.rate
		start := mono()
		times := make([]float64, 0, len(s.events)/s.batch+1)
		for i, b := 0, 0; i < len(s.events); i, b = i+s.batch, b+1 {
			due := start + float64(b)*period
			for {
				now := mono()
				if now >= due {
					break
				}
				time.Sleep(time.Duration(min(due-now, 0.0005) * 1e9))
			}
			times = append(times, mono())
			s.writeAll(w, s.events[i:min(i+s.batch, len(s.events))])
			fl.Flush() // nothing more pending until the next millisecond
		}
		s.mu.Lock()
		s.stats.BatchTimes = times
		s.mu.Unlock()
	}
	end := mono()
	s.mu.Lock()
	s.stats.LastByte = &end
	s.mu.Unlock()
}
