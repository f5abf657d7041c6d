// crwebhook-go: the benchmark's controller-runtime peer. A controller-runtime webhook
// server (sigs.k8s.io/controller-runtime/pkg/webhook, pinned in go.mod) serving one
// validating webhook on /validate-example-com-v1-widget over TLS from CERT_DIR/tls.crt
// and tls.key, checking the same two fields as bench/webhook_bench.py's other servers:
// spec.message a non-empty string of at most 253 characters, spec.replicas (when
// present) an integer from 0 to 10.
//
//	crwebhook-go -port 9443 -cert-dir DIR
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

type widget struct {
	Spec struct {
		Message  *string         `json:"message"`
		Replicas json.RawMessage `json:"replicas"`
	} `json:"spec"`
}

func validate(_ context.Context, req admission.Request) admission.Response {
	if req.Operation == "DELETE" {
		return admission.Allowed("")
	}
	var w widget
	if err := json.Unmarshal(req.Object.Raw, &w); err != nil {
		return admission.Errored(400, err)
	}
	if w.Spec.Message == nil || *w.Spec.Message == "" {
		return admission.Denied("spec.message: must be a non-empty string")
	}
	if len(*w.Spec.Message) > 253 {
		return admission.Denied("spec.message: must be at most 253 characters")
	}
	if w.Spec.Replicas != nil {
		var n int64
		if err := json.Unmarshal(w.Spec.Replicas, &n); err != nil {
			return admission.Denied("spec.replicas: must be an integer from 0 to 10")
		}
		if n < 0 || n > 10 {
			return admission.Denied(fmt.Sprintf("spec.replicas: must be from 0 to 10, not %d", n))
		}
	}
	return admission.Allowed("")
}

func main() {
	port := flag.Int("port", 9443, "port on 127.0.0.1")
	certDir := flag.String("cert-dir", "", "folder with tls.crt and tls.key")
	flag.Parse()
	server := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir})
	server.Register("/validate-example-com-v1-widget", &webhook.Admission{
		Handler: admission.HandlerFunc(validate),
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := server.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
