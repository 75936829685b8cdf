// go_tls_service.go - the HTTPS server test_tls.py's Go group drives: Go's
// net/http with its own TLS (crypto/tls; no OpenSSL, system calls made by
// the Go runtime itself, not through libc). No tracing code at all.
//
// Each request names itself in X-Test-Token; the handler writes "served
// token=T" to stderr and answers 200 with the body "token T\n". After
// binding 127.0.0.1 port 0 it writes its port and a newline to --ready-fd
// and closes it. It must never answer anything but the requests it gets.
//
//	go_tls_service --cert C --key K --ready-fd N
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	cert := flag.String("cert", "", "certificate file")
	key := flag.String("key", "", "key file")
	readyFd := flag.Int("ready-fd", -1, "descriptor for the port")
	flag.Parse()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ready := os.NewFile(uintptr(*readyFd), "ready")
	fmt.Fprintf(ready, "%d\n", ln.Addr().(*net.TCPAddr).Port)
	ready.Close()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get("X-Test-Token")
		fmt.Fprintf(os.Stderr, "served token=%s\n", token)
		body := "token " + token + "\n"
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(200)
		w.Write([]byte(body))
	})
	fmt.Fprintln(os.Stderr, http.ServeTLS(ln, handler, *cert, *key))
	os.Exit(1)
}
