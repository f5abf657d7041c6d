// webhook-load-go: the load generator of bench/webhook_bench.py (standard library only).
// It POSTs one AdmissionReview over TLS on keep-alive HTTP/1.1 connections, either at a
// fixed rate (open loop: latency counts from each request's scheduled time, so a stalled
// server is not hidden) or as fast as the server answers (-rate 0, closed loop), and
// prints one JSON line: requests, errors, requests/s, p50/p99/max latency in ms.
//
//	webhook-load-go -url https://127.0.0.1:9443/validate-... -ca ca.crt -rate 500 -duration 10s
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

const uid = "0a1b2c3d-0000-4000-8000-000000000001"

const review = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"0a1b2c3d-0000-4000-8000-000000000001","kind":{"group":"example.com","version":"v1","kind":"Widget"},"resource":{"group":"example.com","version":"v1","resource":"widgets"},"requestKind":{"group":"example.com","version":"v1","kind":"Widget"},"requestResource":{"group":"example.com","version":"v1","resource":"widgets"},"name":"w","namespace":"default","operation":"CREATE","userInfo":{"username":"bench","groups":["system:authenticated"]},"object":{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","namespace":"default","labels":{"app":"bench"}},"spec":{"message":"hello","replicas":3}},"oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}`

func main() {
	url := flag.String("url", "", "webhook URL")
	caFile := flag.String("ca", "", "CA bundle (PEM)")
	rate := flag.Float64("rate", 0, "requests per second in all; 0 = as fast as answered")
	duration := flag.Duration("duration", 10*time.Second, "how long to send")
	conns := flag.Int("conns", 8, "keep-alive connections")
	flag.Parse()
	ca, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     *conns,
		ForceAttemptHTTP2:   false,
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	body := []byte(review)
	denied := bytes.Replace(body, []byte(`"replicas":3`), []byte(`"replicas":11`), 1)
	send := func() bool {
		resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
		if err != nil {
			return false
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var answer struct {
			Response struct {
				UID     string `json:"uid"`
				Allowed bool   `json:"allowed"`
			} `json:"response"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(out, &answer) != nil {
			return false
		}
		return answer.Response.Allowed && answer.Response.UID == uid
	}
	deny := func() bool {
		resp, err := client.Post(*url, "application/json", bytes.NewReader(denied))
		if err != nil {
			return false
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return bytes.Contains(out, []byte("spec.replicas"))
	}
	// Warm the connections up (TLS handshakes are not what is measured).
	var warm sync.WaitGroup
	for i := 0; i < *conns; i++ {
		warm.Add(1)
		go func() { defer warm.Done(); send() }()
	}
	warm.Wait()
	if !deny() { // the peer really checks: an invalid Widget is denied naming the field
		fmt.Fprintln(os.Stderr, "the server did not deny spec.replicas: 11")
		os.Exit(1)
	}

	var mu sync.Mutex
	var latencies []float64
	errors := 0
	start := time.Now()
	end := start.Add(*duration)
	var wg sync.WaitGroup
	for w := 0; w < *conns; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var local []float64
			bad := 0
			interval := time.Duration(0)
			if *rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(*conns) / *rate)
			}
			next := start.Add(time.Duration(w) * interval / time.Duration(*conns))
			for {
				if interval > 0 {
					if next.After(end) {
						break
					}
					time.Sleep(time.Until(next))
				} else if time.Now().After(end) {
					break
				}
				t := time.Now()
				if interval > 0 {
					t = next
					next = next.Add(interval)
				}
				if !send() {
					bad++
				}
				local = append(local, float64(time.Since(t).Microseconds())/1000)
			}
			mu.Lock()
			latencies = append(latencies, local...)
			errors += bad
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sort.Float64s(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[int(p*float64(len(latencies)-1))]
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requests": len(latencies), "errors": errors,
		"rps":    float64(len(latencies)) / elapsed,
		"p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0),
		"rate": *rate, "conns": *conns,
	})
}
