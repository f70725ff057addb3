package sinktoken_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/sinktoken"
)

var manager = sinktoken.Account{Namespace: "es-system", Name: "controller-manager"}

// clock is a time the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// apiServer answers TokenRequests as answer says, and records them.
type apiServer struct {
	mu       sync.Mutex
	requests []tokenRequest
	answer   func(n int, r tokenRequest) (*authenticationv1.TokenRequest, error)
}

type tokenRequest struct {
	namespace, name string
	spec            authenticationv1.TokenRequestSpec
}

func (s *apiServer) count(audience string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.spec.Audiences[0] == audience {
			n++
		}
	}
	return n
}

// newSource returns a Source of manager's tokens on a fake clientset whose
// TokenRequests srv answers, and the clock it reads.
func newSource(t *testing.T, srv *apiServer) (*sinktoken.Source, *clock) {
	t.Helper()
	cs := fake.NewClientset()
	cs.PrependReactor("create", "serviceaccounts", func(action k8stesting.Action) (bool, runtime.Object, error) {
		create, ok := action.(k8stesting.CreateActionImpl)
		if !ok || action.GetSubresource() != "token" {
			return false, nil, nil
		}
		tr, ok := create.GetObject().(*authenticationv1.TokenRequest)
		if !ok {
			return true, nil, fmt.Errorf("got a %T, want a TokenRequest", create.GetObject())
		}
		r := tokenRequest{namespace: action.GetNamespace(), name: create.Name, spec: tr.Spec}
		srv.mu.Lock()
		srv.requests = append(srv.requests, r)
		n := len(srv.requests)
		srv.mu.Unlock()
		out, err := srv.answer(n, r)
		return true, out, err
	})
	clk := &clock{now: time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)}
	src, err := sinktoken.New(sinktoken.Config{Client: cs.CoreV1(), Account: manager, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return src, clk
}

// granting answers each request with a token named after the audience and
// the request's number, valid for lifetime from now.
func granting(clk *clock, lifetime time.Duration) func(int, tokenRequest) (*authenticationv1.TokenRequest, error) {
	return func(n int, r tokenRequest) (*authenticationv1.TokenRequest, error) {
		return &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token:               fmt.Sprintf("%s-%d", r.spec.Audiences[0], n),
			ExpirationTimestamp: metav1.NewTime(clk.Now().Add(lifetime)),
		}}, nil
	}
}

func mustToken(t *testing.T, src *sinktoken.Source, audience, want string) {
	t.Helper()
	got, err := src.Token(context.Background(), audience)
	if err != nil || got != want {
		t.Fatalf("Token(%q) = %q, %v; want %q", audience, got, err, want)
	}
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestTokenIsRequestedForTheAudienceOfTheManagersAccountAndKept(t *testing.T) {
	srv := &apiServer{}
	src, clk := newSource(t, srv)
	srv.answer = granting(clk, time.Hour)

	mustToken(t, src, "shipping", "shipping-1")
	mustToken(t, src, "shipping", "shipping-1")
	mustToken(t, src, "billing", "billing-2")

	if len(srv.requests) != 2 {
		t.Fatalf("%d TokenRequests; want one per audience", len(srv.requests))
	}
	r := srv.requests[0]
	if r.namespace != manager.Namespace || r.name != manager.Name {
		t.Errorf("TokenRequest for %s/%s; want the manager's %s", r.namespace, r.name, manager)
	}
	if len(r.spec.Audiences) != 1 || r.spec.Audiences[0] != "shipping" {
		t.Errorf("audiences %q; want [shipping]", r.spec.Audiences)
	}
	if r.spec.ExpirationSeconds == nil || *r.spec.ExpirationSeconds != int64(sinktoken.DefaultLifetime/time.Second) {
		t.Errorf("expirationSeconds %v; want %d", r.spec.ExpirationSeconds, int64(sinktoken.DefaultLifetime/time.Second))
	}
}

func TestTokenIsRenewedAt80PercentOfTheLifetimeGranted(t *testing.T) {
	for _, granted := range []time.Duration{time.Hour, 20 * time.Minute} {
		t.Run(granted.String(), func(t *testing.T) {
			srv := &apiServer{}
			src, clk := newSource(t, srv)
			srv.answer = granting(clk, granted)
			mustToken(t, src, "shipping", "shipping-1")

			clk.advance(granted*8/10 - time.Second)
			mustToken(t, src, "shipping", "shipping-1")
			if n := srv.count("shipping"); n != 1 {
				t.Fatalf("%d requests before 80%% of the lifetime; want 1", n)
			}

			// Past 80%: the old token is handed out while the new one is
			// asked for, then the new one.
			clk.advance(2 * time.Second)
			mustToken(t, src, "shipping", "shipping-1")
			eventually(t, "a second TokenRequest", func() bool { return srv.count("shipping") == 2 })
			eventually(t, "the renewed token", func() bool {
				tok, err := src.Token(context.Background(), "shipping")
				return err == nil && tok == "shipping-2"
			})
		})
	}
}

func TestTokenLifetimeIsBoundedByTheOneAskedForAndTheLeastGranted(t *testing.T) {
	for _, tt := range []struct {
		name          string
		granted       time.Duration // as this clock reads the API server's expiry
		kept, renewed time.Duration
	}{
		{"an API server clock ahead", 5 * time.Hour, 47 * time.Minute, 49 * time.Minute},
		{"an API server clock behind", -5 * time.Minute, 7 * time.Minute, 8*time.Minute + 30*time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := &apiServer{}
			src, clk := newSource(t, srv)
			start := clk.Now()
			grant := granting(clk, 0)
			srv.answer = func(n int, r tokenRequest) (*authenticationv1.TokenRequest, error) {
				tr, err := grant(n, r)
				tr.Status.ExpirationTimestamp = metav1.NewTime(start.Add(tt.granted))
				return tr, err
			}
			mustToken(t, src, "shipping", "shipping-1")
			clk.advance(tt.kept)
			mustToken(t, src, "shipping", "shipping-1")
			if n := srv.count("shipping"); n != 1 {
				t.Fatalf("%d requests after %s; want the token kept", n, tt.kept)
			}
			clk.advance(tt.renewed - tt.kept)
			mustToken(t, src, "shipping", "shipping-1")
			eventually(t, "the renewal", func() bool { return srv.count("shipping") == 2 })
		})
	}
}

func TestTokenPast90PercentWaitsForTheRenewal(t *testing.T) {
	srv := &apiServer{}
	src, clk := newSource(t, srv)
	srv.answer = granting(clk, time.Hour)
	mustToken(t, src, "shipping", "shipping-1")

	clk.advance(55 * time.Minute)
	mustToken(t, src, "shipping", "shipping-2")
}

func TestOneTokenRequestPerAudienceUnderConcurrency(t *testing.T) {
	srv := &apiServer{}
	src, clk := newSource(t, srv)
	release := make(chan struct{})
	grant := granting(clk, time.Hour)
	srv.answer = func(n int, r tokenRequest) (*authenticationv1.TokenRequest, error) {
		<-release
		return grant(n, r)
	}

	const callers = 50
	audiences := []string{"shipping", "billing"}
	var wg sync.WaitGroup
	got := make([][]string, len(audiences))
	errs := make(chan error, callers*len(audiences))
	for i, aud := range audiences {
		got[i] = make([]string, callers)
		for j := range callers {
			wg.Go(func() {
				tok, err := src.Token(context.Background(), aud)
				if err != nil {
					errs <- err
				}
				got[i][j] = tok
			})
		}
	}
	// The fake clientset runs one request at a time: the first one holds
	// the other audience's until released. Meanwhile every caller has
	// asked, and waits.
	eventually(t, "a request to start", func() bool { return srv.count("shipping")+srv.count("billing") == 1 })
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, aud := range audiences {
		if n := srv.count(aud); n != 1 {
			t.Errorf("%d TokenRequests for %s; want 1", n, aud)
		}
		for _, tok := range got[i] {
			if tok != got[i][0] || tok == "" {
				t.Fatalf("%s: callers got %q and %q; want the one token", aud, got[i][0], tok)
			}
		}
	}
}

func TestRefusedTokenRequestIsAnErrorThenRecovers(t *testing.T) {
	srv := &apiServer{}
	src, clk := newSource(t, srv)
	grant := granting(clk, time.Hour)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "serviceaccounts/token"}, manager.Name, errors.New("RBAC"))
	srv.answer = func(n int, r tokenRequest) (*authenticationv1.TokenRequest, error) {
		if n == 1 {
			return nil, forbidden
		}
		return grant(n, r)
	}

	_, err := src.Token(context.Background(), "shipping")
	if !apierrors.IsForbidden(err) {
		t.Fatalf("got %v; want the API server's Forbidden", err)
	}
	// Right after a failure the error is answered without asking again.
	if _, err := src.Token(context.Background(), "shipping"); !apierrors.IsForbidden(err) {
		t.Fatalf("got %v; want the same Forbidden", err)
	}
	if n := srv.count("shipping"); n != 1 {
		t.Fatalf("%d TokenRequests within a second of a failure; want 1", n)
	}

	clk.advance(time.Second)
	mustToken(t, src, "shipping", "shipping-2")
}

func TestACallerGivingUpDoesNotCancelTheRequestOthersWaitFor(t *testing.T) {
	srv := &apiServer{}
	src, clk := newSource(t, srv)
	release := make(chan struct{})
	grant := granting(clk, time.Hour)
	srv.answer = func(n int, r tokenRequest) (*authenticationv1.TokenRequest, error) {
		<-release
		return grant(n, r)
	}
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() {
		_, err := src.Token(ctx, "shipping")
		gaveUp <- err
	}()
	eventually(t, "the request to start", func() bool { return srv.count("shipping") == 1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
	close(release)
	mustToken(t, src, "shipping", "shipping-1")
	if n := srv.count("shipping"); n != 1 {
		t.Fatalf("%d TokenRequests; want the first one to have been kept", n)
	}
}

func TestNewRefusesAShortLifetimeAndABadAccount(t *testing.T) {
	cs := fake.NewClientset().CoreV1()
	for _, cfg := range []sinktoken.Config{
		{Client: cs, Account: manager, Lifetime: 5 * time.Minute},
		{Client: cs, Account: sinktoken.Account{Namespace: "es-system"}},
		{Client: cs, Account: sinktoken.Account{Namespace: "Es_System", Name: "x"}},
		{Account: manager},
	} {
		if _, err := sinktoken.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded; want an error", cfg)
		}
	}
}
