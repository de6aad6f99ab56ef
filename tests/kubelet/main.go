// Command fake-kubelet is a stand-in for a kubelet in Lanyard's end-to-end
// tests: no container runtime runs on the test machines, but kube-apiserver
// must have a node to forward `kubectl exec`, `attach` and `port-forward` to.
// It serves the kubelet's streaming endpoints, the way the kubelet does, over
// HTTPS on loopback:
//
//	GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=...&input=1&output=1&error=1&tty=1
//	GET|POST /attach/{namespace}/{pod}[/{uid}]/{container}?input=1&output=1&error=1&tty=1
//	GET|POST /portForward/{namespace}/{pod}[/{uid}]?port=...
//	GET /containerLogs/{namespace}/{pod}/{container}?follow=true  (numbered lines, streamed)
//	GET /healthz  (answers "ok")
//
// The streams are the kubelet's own: the published k8s.io/cri-streaming
// remotecommand and portforward servers (SPDY, and WebSocket for the older
// channel protocols), with a fake runtime behind them. The API server only
// hands a kubelet a WebSocket request when the Node declares the feature
// ExtendWebSocketsToKubelet in status.declaredFeatures; the test nodes do
// not, so kube-apiserver translates kubectl's WebSocket (v5) sessions into
// SPDY itself, as it does for any kubelet that does not declare it.
//
// The fake runtime is deterministic. Every namespace, pod and container is
// accepted (there is no pod list); the behaviour depends only on the command:
//
//   - exec `echo ARGS...` writes ARGS joined by spaces, and a newline, to
//     stdout and exits 0;
//   - exec `cat` copies stdin to stdout until stdin ends, and exits 0;
//   - exec `exit N` exits with code N (0 to 255), writing nothing, so that
//     kubectl's exit code can be checked;
//   - exec `sh -c SCRIPT` runs SCRIPT split at white space as one of these
//     commands (no quoting, pipes or variables): `sh -c 'exit 3'` exits 3;
//   - any other command writes "fake-kubelet: NAME: command not found" to
//     stderr and exits 127;
//   - attach behaves as exec `cat`: stdin is copied to stdout until it ends;
//   - with a TTY (`tty=1`), whatever is read from stdin is first echoed to
//     stdout, as a terminal does, so cat's input comes back twice; stderr
//     goes to stdout, as on a terminal;
//   - port-forward, for each forwarded connection to port P, dials
//     127.0.0.1:P on this machine and copies bytes both ways, so a test can
//     forward to a TCP server of its own.
//
// Each request is logged to stderr (method and path, not the query).
//
// Flags: --port (required), --address (default 127.0.0.1), and
// --tls-cert-file with --tls-private-key-file (PEM) for the serving
// certificate. Without them it makes a self-signed certificate for
// 127.0.0.1, ::1 and localhost at start.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// How long a streaming connection may sit idle, as the kubelet's default.
const streamIdleTimeout = 4 * time.Hour

// How long port-forward waits to connect to the host's port.
const dialTimeout = 10 * time.Second

func main() {
	address := flag.String("address", "127.0.0.1", "the IP address to listen on")
	port := flag.Int("port", 0, "the port to listen on (required)")
	certFile := flag.String("tls-cert-file", "", "PEM serving certificate (default: a self-signed one made at start)")
	keyFile := flag.String("tls-private-key-file", "", "PEM private key of --tls-cert-file")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("fake-kubelet: ")

	if *port <= 0 || *port > 65535 {
		log.Fatalf("--port must be a port number, got %d", *port)
	}
	if (*certFile == "") != (*keyFile == "") {
		log.Fatal("--tls-cert-file and --tls-private-key-file go together")
	}
	certificate, err := servingCertificate(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}

	listener, err := net.Listen("tcp", net.JoinHostPort(*address, strconv.Itoa(*port)))
	if err != nil {
		log.Fatal(err)
	}
	server := &http.Server{
		Handler:           logRequests(routes(fakeRuntime{})),
		ReadHeaderTimeout: 30 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{certificate},
			MinVersion:   tls.VersionTLS12,
		},
		// HTTP/1.1 only: the streams are HTTP/1.1 upgrades.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	log.Printf("serving the kubelet streaming API on https://%s", listener.Addr())
	log.Fatal(server.ServeTLS(listener, "", ""))
}

// routes maps the kubelet's streaming paths to the cri-streaming servers.
func routes(runtime fakeRuntime) *http.ServeMux {
	mux := http.NewServeMux()
	exec := func(w http.ResponseWriter, r *http.Request) {
		options, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.ServeExec(w, r, runtime, r.PathValue("pod"), r.PathValue("uid"), r.PathValue("container"),
			r.URL.Query()["command"], options, streamIdleTimeout, remotecommand.DefaultStreamCreationTimeout,
			remotecommand.SupportedStreamingProtocols)
	}
	attach := func(w http.ResponseWriter, r *http.Request) {
		options, err := remotecommand.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		remotecommand.ServeAttach(w, r, runtime, r.PathValue("pod"), r.PathValue("uid"), r.PathValue("container"),
			options, streamIdleTimeout, remotecommand.DefaultStreamCreationTimeout,
			remotecommand.SupportedStreamingProtocols)
	}
	portForward := func(w http.ResponseWriter, r *http.Request) {
		options, err := portforward.NewV4Options(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		portforward.ServePortForward(w, r, runtime, r.PathValue("pod"), r.PathValue("uid"), options,
			streamIdleTimeout, remotecommand.DefaultStreamCreationTimeout, portforward.SupportedProtocols)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		mux.HandleFunc(method+" /exec/{namespace}/{pod}/{container}", exec)
		mux.HandleFunc(method+" /exec/{namespace}/{pod}/{uid}/{container}", exec)
		mux.HandleFunc(method+" /attach/{namespace}/{pod}/{container}", attach)
		mux.HandleFunc(method+" /attach/{namespace}/{pod}/{uid}/{container}", attach)
		mux.HandleFunc(method+" /portForward/{namespace}/{pod}", portForward)
		mux.HandleFunc(method+" /portForward/{namespace}/{pod}/{uid}", portForward)
	}
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", containerLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	return mux
}

// containerLogs answers `kubectl logs`: lines "log line 1", "log line 2", ...
// Without follow=true it writes three and ends; with it, one at once and then
// one every 200 ms for a minute or until the client goes away, each flushed
// as it is written, so a test can tell a stream from a buffered answer.
func containerLogs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	flusher, _ := w.(http.Flusher)
	follow := r.URL.Query().Get("follow") == "true"
	lines := 3
	if follow {
		lines = 300
	}
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for n := 1; n <= lines; n++ {
		if _, err := fmt.Fprintf(w, "log line %d\n", n); err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !follow || n == lines {
			continue
		}
		select {
		case <-ticker.C:
		case <-r.Context().Done():
			return
		}
	}
}

// logRequests logs each request's method and path before serving it. It
// does not wrap the ResponseWriter, which the upgrades must hijack.
func logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s", r.Method, r.URL.Path)
		next.ServeHTTP(w, r)
	})
}

// fakeRuntime is the deterministic runtime described at the top of this file.
type fakeRuntime struct{}

var (
	_ remotecommand.Executor    = fakeRuntime{}
	_ remotecommand.Attacher    = fakeRuntime{}
	_ portforward.PortForwarder = fakeRuntime{}
)

// ExecInContainer runs one of the fake commands; a non-zero exit is reported
// as the ExitError that the library turns into the exit-code status.
func (fakeRuntime) ExecInContainer(_ context.Context, _, _, _ string, cmd []string, in io.Reader,
	out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	go drain(resize)
	streams := newStreams(in, out, errOut, tty)
	code := streams.run(cmd)
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("%q exited with code %d", strings.Join(cmd, " "), code), Code: code}
	}
	return nil
}

// AttachContainer copies stdin to stdout until stdin ends.
func (fakeRuntime) AttachContainer(_ context.Context, _, _, _ string, in io.Reader, out, errOut io.WriteCloser,
	tty bool, resize <-chan remotecommand.TerminalSize) error {
	go drain(resize)
	return newStreams(in, out, errOut, tty).cat()
}

// PortForward splices one forwarded connection to 127.0.0.1:port. It returns
// once the host side has closed; when the client ends its side first, the
// host connection's write side is closed so the host server sees the end.
func (fakeRuntime) PortForward(_ context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	conn, err := net.DialTimeout("tcp", target, dialTimeout)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %w", target, err)
	}
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, stream)
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.CloseWrite()
		}
	}()
	_, err = io.Copy(stream, conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("copying from %s: %w", target, err)
	}
	return nil
}

// drain reads terminal resizes, which the fake ignores, until the library
// closes the channel (nil when there is no resize stream).
func drain(resize <-chan remotecommand.TerminalSize) {
	for range resize {
	}
}

// streams are one session's stdin, stdout and stderr; an absent stream reads
// as empty or discards what is written.
type streams struct {
	in          io.Reader
	out, errOut io.Writer
	tty         bool
}

func newStreams(in io.Reader, out, errOut io.Writer, tty bool) streams {
	s := streams{in: in, out: out, errOut: errOut, tty: tty}
	if s.in == nil {
		s.in = strings.NewReader("")
	}
	if s.out == nil {
		s.out = io.Discard
	}
	if tty {
		// A terminal has one output: the library never sends stderr then.
		s.errOut = s.out
	} else if s.errOut == nil {
		s.errOut = io.Discard
	}
	return s
}

// run runs one fake command and returns its exit code.
func (s streams) run(cmd []string) int {
	if len(cmd) == 0 {
		fmt.Fprintln(s.errOut, "fake-kubelet: no command given")
		return 127
	}
	switch name, args := cmd[0], cmd[1:]; {
	case name == "echo":
		_, _ = fmt.Fprintln(s.out, strings.Join(args, " "))
		return 0
	case name == "cat" && len(args) == 0:
		if err := s.cat(); err != nil {
			fmt.Fprintf(s.errOut, "cat: %v\n", err)
			return 1
		}
		return 0
	case name == "exit" && len(args) <= 1:
		if len(args) == 0 {
			return 0
		}
		code, err := strconv.Atoi(args[0])
		if err != nil || code < 0 || code > 255 {
			fmt.Fprintf(s.errOut, "exit: %s: exit code must be 0 to 255\n", args[0])
			return 2
		}
		return code
	case name == "sh" && len(args) == 2 && args[0] == "-c":
		return s.run(strings.Fields(args[1]))
	default:
		fmt.Fprintf(s.errOut, "fake-kubelet: %s: command not found\n", name)
		return 127
	}
}

// cat copies stdin to stdout until stdin ends, echoing it first on a TTY.
func (s streams) cat() error {
	buffer := make([]byte, 32*1024)
	for {
		n, err := s.in.Read(buffer)
		if n > 0 {
			copies := 1
			if s.tty {
				copies = 2
			}
			for range copies {
				if _, werr := s.out.Write(buffer[:n]); werr != nil {
					return werr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// servingCertificate loads the given key pair, or makes a self-signed one.
func servingCertificate(certFile, keyFile string) (tls.Certificate, error) {
	if certFile != "" {
		certificate, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("loading the serving certificate: %w", err)
		}
		return certificate, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "fake-kubelet"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
