package reactor

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateSink means a sink's address is loopback, link-local or
// unspecified, which a Reactor may only reach with AllowPrivateSinks: such
// addresses reach the manager itself or the node's metadata service
// (169.254.169.254), not a user's workload.
var ErrPrivateSink = errors.New("sink address is loopback or link-local")

// NewClient returns the HTTP client reactors deliver with. Unless
// allowPrivate, it refuses to connect to private addresses. The check runs on
// the address being dialled, after DNS, so a name that resolves to one (or
// a redirect to one) is refused too. It ignores proxy settings, which would
// hide the address dialled.
func NewClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = refusePrivate
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:       d.DialContext,
		ForceAttemptHTTP2: true,
		// Answers are a status or a small reply event: asking for gzip
		// costs every request a header map and saves nothing.
		DisableCompression:  true,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256, // above the largest usual maxInFlight, so keys reuse connections
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}}
}

func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	if isPrivate(ip) {
		return fmt.Errorf("%w: %s (the manager allows it with --allow-private-sinks)", ErrPrivateSink, ip)
	}
	return nil
}

func isPrivate(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsUnspecified()
}

// CheckSinkHost refuses, before any dial, a sink URL host that is a private
// IP literal or "localhost", so a spec that can never be delivered to is
// reported at once.
func CheckSinkHost(host string) error {
	if host == "localhost" {
		return fmt.Errorf("%w: localhost", ErrPrivateSink)
	}
	if ip, err := netip.ParseAddr(host); err == nil && isPrivate(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateSink, ip)
	}
	return nil
}
