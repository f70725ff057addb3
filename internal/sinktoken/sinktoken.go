// Package sinktoken gives Reactor sinks tokens of the manager's
// ServiceAccount, each bound to the sink's audience (TokenRequest), so a
// sink can check who calls it with a TokenReview for its audience.
package sinktoken

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

const (
	// DefaultLifetime is the lifetime requested for each token.
	DefaultLifetime = time.Hour
	// MinLifetime is the shortest lifetime the API server grants.
	MinLifetime = 10 * time.Minute
	// requestTimeout bounds one TokenRequest.
	requestTimeout = 30 * time.Second
	// retryGap is how long a failed TokenRequest is answered from memory,
	// so that many deliveries failing at once ask the API server once.
	retryGap = time.Second
)

// Config configures a Source.
type Config struct {
	// Client creates the tokens: a clientset's CoreV1().
	Client typedcorev1.ServiceAccountsGetter
	// Account is the ServiceAccount the tokens are of.
	Account Account
	// Lifetime is requested for each token (default DefaultLifetime, at
	// least MinLifetime). A token is replaced at 80% of the lifetime the
	// API server granted, counted as at most this and at least
	// MinLifetime.
	Lifetime time.Duration
	// Now tells the time (default time.Now).
	Now func() time.Time
}

// Source hands out tokens per audience, each requested once and replaced
// before it expires. It is safe for concurrent use, and at most one
// TokenRequest per audience is in flight.
type Source struct {
	cfg Config

	mu         sync.Mutex
	byAudience map[string]*cached
}

// cached is the token of one audience and the state of its renewal.
type cached struct {
	token string
	// renewAt is when a new token is asked for; the token is still handed
	// out until usableUntil while the request runs.
	renewAt, usableUntil time.Time
	// err is the last request's failure, answered until retryAt.
	err     error
	retryAt time.Time
	// fetched is closed when the request in flight ends; nil when none is.
	fetched chan struct{}
}

// New checks cfg and returns its Source.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("sinktoken: Client is required")
	}
	if err := cfg.Account.validate(); err != nil {
		return nil, err
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Lifetime < MinLifetime {
		return nil, fmt.Errorf("sinktoken: lifetime %s: want at least %s", cfg.Lifetime, MinLifetime)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Source{cfg: cfg, byAudience: map[string]*cached{}}, nil
}

// Account returns the ServiceAccount the tokens are of.
func (s *Source) Account() Account { return s.cfg.Account }

// Token returns a token of the ServiceAccount for audience. A token past
// 80% of its lifetime is renewed; until 90%, callers get the old one
// meanwhile instead of waiting. A refused request is an error for retryGap,
// then asked again.
func (s *Source) Token(ctx context.Context, audience string) (string, error) {
	if audience == "" {
		return "", errors.New("sinktoken: empty audience")
	}
	for {
		s.mu.Lock()
		c := s.byAudience[audience]
		if c == nil {
			c = &cached{}
			s.byAudience[audience] = c
		}
		now := s.cfg.Now()
		if token := c.token; token != "" && now.Before(c.renewAt) {
			s.mu.Unlock() // c changes under s.mu only: read it before
			return token, nil
		}
		if c.fetched == nil && !now.Before(c.retryAt) {
			c.fetched = make(chan struct{})
			go s.fetch(audience, c)
		}
		if token := c.token; token != "" && now.Before(c.usableUntil) {
			s.mu.Unlock()
			return token, nil
		}
		fetched, err := c.fetched, c.err
		s.mu.Unlock()
		if fetched == nil {
			return "", err
		}
		select {
		case <-fetched:
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for a token for audience %q: %w", audience, ctx.Err())
		}
	}
}

// fetch requests a token for audience and records the outcome in c. It
// runs on its own, bounded by requestTimeout, so a caller giving up does
// not cancel the request the others wait for.
func (s *Source) fetch(audience string, c *cached) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	asked := s.cfg.Now()
	seconds := int64(s.cfg.Lifetime / time.Second)
	acct := s.cfg.Account
	tr, err := s.cfg.Client.ServiceAccounts(acct.Namespace).CreateToken(ctx, acct.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &seconds},
	}, metav1.CreateOptions{})
	if err == nil && tr.Status.Token == "" {
		err = errors.New("the answer holds no token")
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		close(c.fetched)
		c.fetched = nil
	}()
	if err != nil {
		c.err = fmt.Errorf("request a token of ServiceAccount %s for audience %q: %w", acct, audience, err)
		c.retryAt = s.cfg.Now().Add(retryGap)
		return
	}
	// The API server may grant less than was asked for. Its expiry is read
	// on its clock, and measured here from when the token was asked for
	// (a slow answer only renews it sooner); bounded by what was asked for
	// and by the least the API server grants, so that a clock far off
	// neither keeps a token past its end nor renews it on every call.
	granted := tr.Status.ExpirationTimestamp.Sub(asked)
	lifetime := max(min(granted, s.cfg.Lifetime), MinLifetime)
	c.token, c.err, c.retryAt = tr.Status.Token, nil, time.Time{}
	c.renewAt = asked.Add(lifetime * 8 / 10)
	c.usableUntil = asked.Add(lifetime * 9 / 10)
}
