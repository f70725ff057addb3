package controller

import (
	"log/slog"

	esv1 "github.com/eventsourcing-dev/eventsourcing-operator/api/v1alpha1"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/core"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/middleware"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/projection"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/reactor"
	"github.com/eventsourcing-dev/eventsourcing-operator/internal/engine/serde"
)

// streamSpec turns a Stream into the engine's spec. descriptorSet is the
// content of the referenced ConfigMap key, if any; defaultDeadLetter is the
// manager's --dead-letter-stream.
func streamSpec(s *esv1.Stream, descriptorSet []byte, defaultDeadLetter string) core.StreamSpec {
	spec := core.StreamSpec{
		Name:             engineName(s.Namespace, s.Name),
		DefaultEventName: s.Spec.DefaultEventName,
		BacklogLimit:     int(s.Spec.BacklogLimit),
	}
	for _, ct := range s.Spec.ContentTypes {
		spec.ContentTypes = append(spec.ContentTypes, string(ct))
	}
	if sc := s.Spec.Schemas; sc != nil {
		spec.Schema = serde.Schema{Avro: sc.Avro}
		if sc.Protobuf != nil {
			spec.Schema.ProtobufMessageType = sc.Protobuf.MessageType
			spec.Schema.ProtobufDescriptorSet = descriptorSet
		}
	}
	deadLetter := s.Spec.DeadLetterStream
	if deadLetter == "" {
		deadLetter = defaultDeadLetter
	}
	// Dead-letter streams are per namespace, like every stream.
	spec.DeadLetterStream = engineName(s.Namespace, deadLetter)
	if r := s.Spec.Retention; r != nil {
		if r.MaxEvents != nil && *r.MaxEvents > 0 {
			spec.Retention.MaxEvents = uint64(*r.MaxEvents)
		}
		if r.MaxAge != nil {
			spec.Retention.MaxAge = r.MaxAge.Duration
		}
	}
	return spec
}

// pipelineSpec turns a Pipeline into the engine's spec.
func pipelineSpec(p *esv1.Pipeline) core.PipelineSpec {
	spec := core.PipelineSpec{Name: engineName(p.Namespace, p.Name)}
	for _, m := range p.Spec.Middleware {
		ms := core.MiddlewareSpec{Type: string(m.Type), LogLevel: slog.LevelDebug}
		if m.Logging != nil && m.Logging.Level == esv1.LogLevelInfo {
			ms.LogLevel = slog.LevelInfo
		}
		if r := m.Retry; r != nil {
			cfg := middleware.RetryConfig{MaxAttempts: int(r.MaxAttempts), Multiplier: float64(r.Multiplier)}
			if r.InitialBackoff != nil {
				cfg.InitialBackoff = r.InitialBackoff.Duration
			}
			if r.MaxBackoff != nil {
				cfg.MaxBackoff = r.MaxBackoff.Duration
			}
			ms.Retry = &cfg
		}
		if d := m.Dedupe; d != nil && d.Window != nil {
			ms.Dedupe = &middleware.DedupeConfig{Window: d.Window.Duration}
		}
		if t := m.Timeout; t != nil {
			ms.TimeoutAfter = t.After.Duration
		}
		if f := m.Filter; f != nil {
			ms.FilterExpression = f.Expression
		}
		spec.Middleware = append(spec.Middleware, ms)
	}
	return spec
}

// projectionSpec turns a Projection into the engine's spec.
func projectionSpec(p *esv1.Projection) core.ProjectionSpec {
	spec := core.ProjectionSpec{Spec: projection.Spec{
		Name:          engineName(p.Namespace, p.Name),
		EventNames:    p.Spec.EventNames,
		StartFrom:     projection.StartFrom(p.Spec.StartFrom),
		Type:          projection.ReadModelType(p.Spec.ReadModel.Type),
		Key:           p.Spec.ReadModel.Key,
		KeyExpression: p.Spec.ReadModel.KeyExpression,
	}}
	for _, s := range p.Spec.Streams {
		spec.Streams = append(spec.Streams, engineName(p.Namespace, s))
	}
	if p.Spec.PipelineRef != nil && p.Spec.PipelineRef.Name != "" {
		spec.Pipeline = engineName(p.Namespace, p.Spec.PipelineRef.Name)
	}
	if r := p.Spec.ReadModel.Reduce; r != nil {
		spec.Reducer = projection.Reducer{Initial: r.Initial, Expression: r.Expression}
	}
	return spec
}

// reactorSpec turns a Reactor, its sink resolved to sinkURL, into the
// engine's spec.
func reactorSpec(rx *esv1.Reactor, sinkURL string) core.ReactorSpec {
	spec := core.ReactorSpec{
		Name:        engineName(rx.Namespace, rx.Name),
		EventNames:  rx.Spec.EventNames,
		StartFrom:   projection.StartFrom(rx.Spec.StartFrom),
		SinkURL:     sinkURL,
		Audience:    rx.Spec.Sink.Audience,
		Ordering:    reactor.Ordering(rx.Spec.Delivery.Ordering),
		MaxInFlight: int(rx.Spec.Delivery.MaxInFlight),
	}
	for _, s := range rx.Spec.Streams {
		spec.Streams = append(spec.Streams, engineName(rx.Namespace, s))
	}
	if rx.Spec.PipelineRef != nil && rx.Spec.PipelineRef.Name != "" {
		spec.Pipeline = engineName(rx.Namespace, rx.Spec.PipelineRef.Name)
	}
	if rx.Spec.Reply != nil {
		spec.ReplyStream = engineName(rx.Namespace, rx.Spec.Reply.Stream)
	}
	if t := rx.Spec.Delivery.Timeout; t != nil {
		spec.Timeout = t.Duration
	}
	return spec
}
