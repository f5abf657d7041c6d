// Command streamserver is the benchmark's pod list/watch server with the real
// kube-apiserver's watch framing, and a bare reader that drains and verifies it.
//
//	streamserver serve --items F --events F [--tls --ca-out F] [--rate N --batch N]
//	streamserver read  --url URL [--ca F] [--token T] [--events N | --until-bookmark]
//
// serve: stdlib net/http, HTTP/1.1 only (TLSNextProto is an empty map, so no peer
// gets HTTP/2: every peer sees the same framing). A watch event is one Write of its
// JSON line to the ResponseWriter, and a Flush when nothing more is pending, as the
// apiserver's watch handler does (pkg/endpoints/handlers/watch.go flushes when its
// result channel is empty). So each event is one HTTP chunk (net/http buffers 2 KB
// before chunking: a Write larger than that is a chunk of its own), and the chunks go
// to the connection through net/http's 4 KB bufio.Writer, so over TLS they leave as
// ~4 KB records, exactly like the apiserver.
//
// read: a bare client (HTTP/1.1 parsed by hand, chunked decoding, newline counting)
// whose events/s is the server's ceiling. It also counts HTTP chunks per event and,
// over TLS, parses the TLS record headers of the raw TCP stream under crypto/tls, so
// it reports chunks/event and the record sizes as they are on the wire.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: streamserver serve|read [flags]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		serve(os.Args[2:])
	case "read":
		read(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, "usage: streamserver serve|read [flags]")
		os.Exit(2)
	}
}
