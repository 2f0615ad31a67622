package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// plane is one etcd + kube-apiserver pair managed by the supervisor.
type plane struct {
	dir           string
	self          string
	etcdPort      int
	apiPort       int
	token         string
	extraAPIFlags []string

	mu        sync.Mutex
	etcd      *exec.Cmd
	apiserver *exec.Cmd
}

// info is printed as one JSON line once the control plane is ready.
type info struct {
	Kubeconfig string `json:"kubeconfig"`
	Server     string `json:"server"`
	Token      string `json:"token"`
	CAFile     string `json:"caFile"`
	Dir        string `json:"dir"`
	Pid        int    `json:"pid"`
	EtcdPid    int    `json:"etcdPid"`
	APIPid     int    `json:"apiserverPid"`
	StartupMs  int64  `json:"startupMs"`
}

func up(args []string) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	dir := fs.String("dir", "", "working directory for certificates, etcd data, logs and the kubeconfig (required)")
	watchStdin := fs.Bool("watch-stdin", false, "stop everything when standard input reaches EOF")
	removeDir := fs.Bool("remove-dir-on-exit", false, "delete --dir after stopping")
	etcdPort := fs.Int("etcd-port", 0, "etcd client port (0 picks a free one)")
	apiPort := fs.Int("apiserver-port", 0, "kube-apiserver secure port (0 picks a free one)")
	timeout := fs.Duration("timeout", 120*time.Second, "how long to wait for readiness")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "up: --dir is required")
		return 2
	}
	start := time.Now()
	abs, err := filepath.Abs(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "up:", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "up:", err)
		return 1
	}
	p := &plane{dir: abs, self: self, etcdPort: *etcdPort, apiPort: *apiPort}
	if err := p.prepare(); err != nil {
		fmt.Fprintln(os.Stderr, "up: prepare:", err)
		return 1
	}
	if err := p.start(*timeout); err != nil {
		fmt.Fprintln(os.Stderr, "up: start:", err)
		p.stop()
		return 1
	}
	p.mu.Lock()
	out := info{
		Kubeconfig: filepath.Join(abs, "kubeconfig"),
		Server:     p.server(),
		Token:      p.token,
		CAFile:     filepath.Join(abs, "pki", "ca.crt"),
		Dir:        abs,
		Pid:        os.Getpid(),
		EtcdPid:    p.etcd.Process.Pid,
		APIPid:     p.apiserver.Process.Pid,
		StartupMs:  time.Since(start).Milliseconds(),
	}
	p.mu.Unlock()
	line, _ := json.Marshal(out)
	_ = os.WriteFile(filepath.Join(abs, "control-plane.json"), line, 0o644)
	fmt.Println(string(line))

	done := make(chan struct{})
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			close(done)
		}()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	if *removeDir {
		defer os.RemoveAll(abs)
	}
	for {
		select {
		case <-done:
			p.stop()
			return 0
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				fmt.Fprintln(os.Stderr, "up: restarting etcd and kube-apiserver")
				p.stop()
				if err := p.start(*timeout); err != nil {
					fmt.Fprintln(os.Stderr, "up: restart:", err)
					p.stop()
					return 1
				}
				fmt.Fprintln(os.Stderr, "up: restarted")
				continue
			}
			p.stop()
			return 0
		}
	}
}

func (p *plane) server() string {
	return "https://127.0.0.1:" + strconv.Itoa(p.apiPort)
}

// prepare picks ports and writes certificates, the token file and the kubeconfig.
func (p *plane) prepare() error {
	pki := filepath.Join(p.dir, "pki")
	if err := os.MkdirAll(pki, 0o755); err != nil {
		return err
	}
	var err error
	if p.etcdPort == 0 {
		if p.etcdPort, err = freePort(); err != nil {
			return err
		}
	}
	if p.apiPort == 0 {
		if p.apiPort, err = freePort(); err != nil {
			return err
		}
	}
	if err := writePKI(pki); err != nil {
		return err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	p.token = hex.EncodeToString(raw)
	tokens := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", p.token)
	if err := os.WriteFile(filepath.Join(pki, "tokens.csv"), []byte(tokens), 0o600); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return err
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: test
  context:
    cluster: test
    user: admin
    namespace: default
current-context: test
`, p.server(), b64(ca), p.token)
	return os.WriteFile(filepath.Join(p.dir, "kubeconfig"), []byte(kubeconfig), 0o600)
}

func (p *plane) child(name string, args []string, log string) (*exec.Cmd, chan struct{}, error) {
	f, err := os.OpenFile(filepath.Join(p.dir, log), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	cmd := &exec.Cmd{Path: p.self, Args: append([]string{name}, args...), Stdout: f, Stderr: f}
	// The children die with the supervisor, even when it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, nil, err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	return cmd, exited, nil
}

func (p *plane) start(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	pki := filepath.Join(p.dir, "pki")
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(p.etcdPort)
	etcd, etcdExited, err := p.child("etcd", []string{
		"--name=test",
		"--data-dir=" + filepath.Join(p.dir, "etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=http://127.0.0.1:0",
		"--unsafe-no-fsync=true",
		"--log-level=warn",
		"--quota-backend-bytes=8589934592",
	}, "etcd.log")
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.etcd = etcd
	p.mu.Unlock()
	if err := waitHTTP(etcdURL+"/health", nil, deadline, etcdExited); err != nil {
		return fmt.Errorf("etcd not healthy (see %s): %w", filepath.Join(p.dir, "etcd.log"), err)
	}
	api, apiExited, err := p.child("kube-apiserver", append([]string{
		"--etcd-servers=" + etcdURL,
		"--secure-port=" + strconv.Itoa(p.apiPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--cert-dir=" + pki,
		"--tls-cert-file=" + filepath.Join(pki, "apiserver.crt"),
		"--tls-private-key-file=" + filepath.Join(pki, "apiserver.key"),
		"--token-auth-file=" + filepath.Join(pki, "tokens.csv"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--service-account-issuer=" + p.server() + "/",
		"--service-account-key-file=" + filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--endpoint-reconciler-type=none",
		"--v=0",
	}, p.extraAPIFlags...), "apiserver.log")
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.apiserver = api
	p.mu.Unlock()
	ca, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	hdr := map[string]string{"Authorization": "Bearer " + p.token}
	if err := waitHTTPClient(client, p.server()+"/readyz", hdr, deadline, apiExited); err != nil {
		return fmt.Errorf("kube-apiserver not ready (see %s): %w", filepath.Join(p.dir, "apiserver.log"), err)
	}
	if err := waitHTTPClient(client, p.server()+"/api/v1/namespaces/default", hdr, deadline, apiExited); err != nil {
		return fmt.Errorf("namespace default never appeared: %w", err)
	}
	return nil
}

// stop terminates the API server, then etcd, waiting a bounded time for each.
func (p *plane) stop() {
	p.mu.Lock()
	api, etcd := p.apiserver, p.etcd
	p.apiserver, p.etcd = nil, nil
	p.mu.Unlock()
	for _, c := range []*exec.Cmd{api, etcd} {
		if c == nil || c.Process == nil {
			continue
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func(c *exec.Cmd) {
			for {
				if err := c.Process.Signal(syscall.Signal(0)); err != nil {
					close(exited)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}(c)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
		}
	}
}

func waitHTTP(url string, hdr map[string]string, deadline time.Time, exited chan struct{}) error {
	return waitHTTPClient(&http.Client{Timeout: 2 * time.Second}, url, hdr, deadline, exited)
}

// waitHTTPClient polls url until it answers 200, the deadline passes or the process
// behind it exits.
func waitHTTPClient(client *http.Client, url string, hdr map[string]string, deadline time.Time, exited chan struct{}) error {
	var last error = errors.New("timed out")
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the process exited")
		default:
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writePKI writes a throwaway CA, an API-server serving certificate for the
// loopback address and a service-account signing key pair.
func writePKI(dir string) error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "contiguity-operator-test-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	files["ca.crt"] = pemBlock("CERTIFICATE", caDER)
	files["apiserver.crt"] = pemBlock("CERTIFICATE", srvDER)
	if files["apiserver.key"], err = ecKeyPEM(srvKey); err != nil {
		return err
	}
	if files["sa.key"], err = ecKeyPEM(saKey); err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	files["sa.pub"] = pemBlock("PUBLIC KEY", saPub)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func ecKeyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pemBlock("EC PRIVATE KEY", der), nil
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func b64(data []byte) string {
	return base64.StdEncoding.EncodeToString(data)
}
