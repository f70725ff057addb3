package core_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
)

// tokensFunc is a reactor.TokenSource made of a function.
type tokensFunc func(ctx context.Context, audience string) (string, error)

func (f tokensFunc) Token(ctx context.Context, audience string) (string, error) {
	return f(ctx, audience)
}

// audienceTokens gives "token-for-<audience>".
var audienceTokens = tokensFunc(func(_ context.Context, audience string) (string, error) {
	return "token-for-" + audience, nil
})

func tokenEngine(t *testing.T, tokens tokensFunc) *core.Engine {
	t.Helper()
	e := startEngine(t, core.Config{AllowPrivateSinks: true, Tokens: tokens})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders", DefaultEventName: "OrderPaid"})
	return e
}

func TestReactorSendsTheTokenOfItsAudienceWithEachDelivery(t *testing.T) {
	e := tokenEngine(t, audienceTokens)
	withAudience, without := newSink(t, ok), newSink(t, ok)
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: withAudience.URL, Audience: "shipping",
	})
	mustApplyReactor(t, e, core.ReactorSpec{Name: "shop/audit", Streams: []string{"shop/orders"}, SinkURL: without.URL})
	ingestJSON(t, e, "shop/orders", `{"n":1}`, `{"n":2}`)

	for _, d := range withAudience.waitFor(t, 2) {
		if got := d.header.Get("Authorization"); got != "Bearer token-for-shipping" {
			t.Errorf("Authorization %q; want the token of audience shipping", got)
		}
	}
	for _, d := range without.waitFor(t, 2) {
		if got := d.header.Get("Authorization"); got != "" {
			t.Errorf("Authorization %q sent to a sink that names no audience", got)
		}
	}
}

func TestReactorSendsTheTokenOfTheAudienceAppliedLast(t *testing.T) {
	e := tokenEngine(t, audienceTokens)
	sink := newSink(t, ok)
	spec := core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, Audience: "shipping",
		StartFrom: projection.Beginning,
	}
	mustApplyReactor(t, e, spec)
	ingestJSON(t, e, "shop/orders", `{}`)
	sink.waitFor(t, 1)
	waitReactor(t, e, spec.Name, func(st core.ReactorStats) bool { return st.Delivered == 1 })

	spec.Audience = "shipping-v2"
	mustApplyReactor(t, e, spec)
	ingestJSON(t, e, "shop/orders", `{}`)
	if got := sink.waitFor(t, 2)[1].header.Get("Authorization"); got != "Bearer token-for-shipping-v2" {
		t.Fatalf("Authorization %q after the audience changed; want the new audience's token", got)
	}
}

func TestReactorRetriesATokenItCannotGetAndDeliversOnceItCan(t *testing.T) {
	var asked atomic.Int32
	e := tokenEngine(t, func(ctx context.Context, audience string) (string, error) {
		if asked.Add(1) <= 2 {
			return "", errors.New("serviceaccounts \"controller-manager\" is forbidden")
		}
		return audienceTokens(ctx, audience)
	})
	sink := newSink(t, ok)
	mustApplyReactor(t, e, core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: sink.URL, Audience: "shipping",
		Pipeline: fastRetry(t, e, 5),
	})
	ingestJSON(t, e, "shop/orders", `{}`)

	st := waitReactor(t, e, "shop/ship", func(st core.ReactorStats) bool { return st.Delivered == 1 })
	got := sink.deliveries()
	if st.DeadLettered != 0 || len(got) != 1 || asked.Load() != 3 {
		t.Fatalf("%d dead-lettered, %d requests, %d tokens asked for; want 0, 1 and 3", st.DeadLettered, len(got), asked.Load())
	}
	if h := got[0].header.Get("Authorization"); h != "Bearer token-for-shipping" {
		t.Fatalf("Authorization %q; want the token got on the third try", h)
	}
}

func TestReactorWithAnAudienceIsRefusedWithoutATokenSource(t *testing.T) {
	e := startEngine(t, core.Config{AllowPrivateSinks: true})
	mustApplyStream(t, e, core.StreamSpec{Name: "shop/orders"})
	err := e.ApplyReactor(context.Background(), core.ReactorSpec{
		Name: "shop/ship", Streams: []string{"shop/orders"}, SinkURL: "http://127.0.0.1:9/", Audience: "shipping",
	})
	if !errors.Is(err, core.ErrInvalidSpec) || !strings.Contains(err.Error(), "--token-service-account") {
		t.Fatalf("got %v; want ErrInvalidSpec naming --token-service-account", err)
	}
	if _, err := e.ReactorStats(context.Background(), "shop/ship"); !errors.Is(err, core.ErrReactorNotFound) {
		t.Fatalf("ReactorStats: %v; want a refused reactor not to exist", err)
	}
}
