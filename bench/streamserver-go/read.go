package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// recordCounter sits between the TCP socket and crypto/tls and parses the TLS record
// headers (type, version, 2-byte length) of everything read, so the record sizes are
// the ones on the wire. With plain HTTP it only counts reads.
type recordCounter struct {
	net.Conn
	measuring   bool
	hdr         [5]byte
	hdrN        int
	remaining   int
	records     int
	recordBytes int64
	maxRecord   int
	hist        [5]int // payload < 1 KB, < 4 KB, 4-4.2 KB, < 16 KB, >= 16 KB
	reads       int
	readBytes   int64
}

func (c *recordCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.measuring {
		c.reads++
		c.readBytes += int64(n)
	}
	b := p[:n]
	for len(b) > 0 {
		if c.remaining > 0 {
			k := min(c.remaining, len(b))
			c.remaining -= k
			b = b[k:]
			continue
		}
		k := copy(c.hdr[c.hdrN:], b)
		c.hdrN += k
		b = b[k:]
		if c.hdrN == 5 {
			c.hdrN = 0
			size := int(c.hdr[3])<<8 | int(c.hdr[4])
			c.remaining = size
			if c.measuring && c.hdr[0] == 23 { // application_data
				c.records++
				c.recordBytes += int64(size)
				c.maxRecord = max(c.maxRecord, size)
				switch {
				case size < 1024:
					c.hist[0]++
				case size < 4096:
					c.hist[1]++
				case size <= 4300:
					c.hist[2]++
				case size < 16384:
					c.hist[3]++
				default:
					c.hist[4]++
				}
			}
		}
	}
	return n, err
}

type result struct {
	Events          int     `json:"events"`
	BodyBytes       int64   `json:"body_bytes"`
	Chunks          int     `json:"chunks"`
	ChunksPerEvent  float64 `json:"chunks_per_event"`
	MultiEventChunk int     `json:"chunks_with_several_events"`
	SplitEvents     int     `json:"events_split_across_chunks"`
	MeanChunk       float64 `json:"mean_chunk_bytes"`
	TLS             bool    `json:"tls"`
	Records         int     `json:"tls_records"`
	MeanRecord      float64 `json:"mean_tls_record_bytes"`
	MaxRecord       int     `json:"max_tls_record_bytes"`
	RecordsPerEvent float64 `json:"tls_records_per_event"`
	RecordHist      [5]int  `json:"tls_record_hist"`
	Reads           int     `json:"reads"`
	TStart          float64 `json:"t_start"`
	THeaders        float64 `json:"t_headers"`
	TFirst          float64 `json:"t_first_byte"`
	TEnd            float64 `json:"t_end"`
	EventsPerS      float64 `json:"events_per_s"`
	Proto           string  `json:"proto"`
	PeakRSS         int64   `json:"peak_rss"`
}

// peakRSS is VmHWM from /proc/self/status in bytes (the parent's wait4 rusage would
// count the forked parent's pages from before exec).
func peakRSS() int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func read(args []string) {
	start := mono()
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	rawURL := fs.String("url", "", "the watch URL (http:// or https://)")
	caFile := fs.String("ca", "", "CA certificate (PEM) to verify the server")
	token := fs.String("token", "", "bearer token")
	certFile := fs.String("cert", "", "client certificate (PEM)")
	keyFile := fs.String("key", "", "client key (PEM)")
	wantEvents := fs.Int("events", 0, "stop after this many events (lines)")
	untilBookmark := fs.Bool("until-bookmark", false, "stop after the initial-events-end bookmark")
	idle := fs.Duration("idle", 0, "stop once no data came for this long")
	fs.Parse(args)

	u, err := url.Parse(*rawURL)
	if err != nil {
		log.Fatal(err)
	}
	host := u.Host
	useTLS := u.Scheme == "https"
	tcp, err := net.Dial("tcp", host)
	if err != nil {
		log.Fatal(err)
	}
	rc := &recordCounter{Conn: tcp}
	var conn net.Conn = rc
	proto := "http/1.1"
	if useTLS {
		cfg := &tls.Config{NextProtos: []string{"http/1.1"}}
		if *caFile != "" {
			pemData, err := os.ReadFile(*caFile)
			if err != nil {
				log.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pemData)
			cfg.RootCAs = pool
		}
		if *certFile != "" {
			cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				log.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		h, _, _ := net.SplitHostPort(host)
		cfg.ServerName = h
		tc := tls.Client(rc, cfg)
		if err := tc.Handshake(); err != nil {
			log.Fatal(err)
		}
		proto = tls.VersionName(tc.ConnectionState().Version)
		conn = tc
	}
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + host +
		"\r\nAccept: application/json\r\nAccept-Encoding: identity\r\nUser-Agent: bench-bare-reader\r\n"
	if *token != "" {
		req += "Authorization: Bearer " + *token + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		log.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 256*1024)
	status, err := br.ReadString('\n')
	if err != nil {
		log.Fatal(err)
	}
	chunked := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			log.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		if strings.EqualFold(k, "transfer-encoding") && strings.Contains(strings.ToLower(v), "chunked") {
			chunked = true
		}
	}
	if !strings.Contains(status, " 200 ") {
		log.Fatalf("status %s", strings.TrimSpace(status))
	}
	if !chunked {
		log.Fatal("the watch body is not chunked")
	}
	res := result{TLS: useTLS, TStart: start, THeaders: mono(), Proto: proto}
	fmt.Println("headers") // the harness releases the body (GET /_go) after this line
	os.Stdout.Sync()
	rc.measuring = true

	buf := make([]byte, 256*1024)
	var tail []byte
	lastEndedLine := true
	done := false
	for !done {
		if *idle > 0 {
			tcp.SetReadDeadline(time.Now().Add(*idle))
		}
		sizeLine, err := br.ReadSlice('\n')
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				break
			}
			if err == io.EOF {
				break
			}
			log.Fatal(err)
		}
		if res.TFirst == 0 {
			res.TFirst = mono()
		}
		hexSize, _, _ := strings.Cut(strings.TrimSpace(string(sizeLine)), ";")
		size, err := strconv.ParseInt(hexSize, 16, 64)
		if err != nil {
			log.Fatalf("bad chunk size %q", sizeLine)
		}
		if size == 0 {
			break
		}
		res.Chunks++
		res.BodyBytes += size
		lines := 0
		var last byte
		for size > 0 {
			n, err := br.Read(buf[:min(int64(len(buf)), size)])
			if err != nil {
				log.Fatal(err)
			}
			data := buf[:n]
			lines += bytes.Count(data, []byte{'\n'})
			if *untilBookmark {
				probe := append(tail, data...)
				if bytes.Contains(probe, []byte("k8s.io/initial-events-end")) {
					done = true
				}
				tail = append(tail[:0], probe[max(0, len(probe)-32):]...)
			}
			last = data[n-1]
			size -= int64(n)
		}
		if _, err := br.Discard(2); err != nil {
			log.Fatal(err)
		}
		if lines > 1 || (lines == 1 && !lastEndedLine) {
			res.MultiEventChunk++
		}
		if !lastEndedLine {
			res.SplitEvents++
		}
		lastEndedLine = last == '\n'
		res.Events += lines
		if *wantEvents > 0 && res.Events >= *wantEvents {
			done = true
		}
	}
	res.TEnd = mono()
	conn.Close()
	if res.Events > 0 {
		res.ChunksPerEvent = float64(res.Chunks) / float64(res.Events)
		res.RecordsPerEvent = float64(rc.records) / float64(res.Events)
		res.EventsPerS = float64(res.Events) / (res.TEnd - res.TFirst)
	}
	if res.Chunks > 0 {
		res.MeanChunk = float64(res.BodyBytes) / float64(res.Chunks)
	}
	res.Records, res.MaxRecord, res.RecordHist, res.Reads = rc.records, rc.maxRecord, rc.hist, rc.reads
	if rc.records > 0 {
		res.MeanRecord = float64(rc.recordBytes) / float64(rc.records)
	}
	res.PeakRSS = peakRSS()
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
