//! W3C trace context at submit: a task request made while the caller is inside a trace (an
//! OpenTelemetry context, or a `tracing` span exported through `tracing-opentelemetry`)
//! carries that trace's `traceparent` (and `tracestate`) as task headers. The cluster keeps
//! them in the log and hands them to the worker, so the run joins the submitter's trace. A
//! request made outside any trace carries none (a plain task stays as small as it was).

use std::collections::BTreeMap;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header names of W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The caller's current span: the `tracing` span's OpenTelemetry context if it has one, else
/// OpenTelemetry's current context.
fn current() -> Option<opentelemetry::trace::SpanContext> {
    let of = |cx: opentelemetry::Context| {
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    };
    of(tracing::Span::current().context()).or_else(|| of(opentelemetry::Context::current()))
}

/// `traceparent` of a span context (version 00).
pub fn traceparent(sc: &opentelemetry::trace::SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    )
}

/// Add the caller's trace context to `headers`, unless they name one already.
pub fn inject_current(headers: &mut BTreeMap<String, String>) {
    if headers.contains_key(TRACEPARENT) {
        return;
    }
    let Some(sc) = current() else {
        return;
    };
    headers.insert(TRACEPARENT.into(), traceparent(&sc));
    let state = sc.trace_state().header();
    if !state.is_empty() {
        headers.insert(TRACESTATE.into(), state);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::SpanContext;
    use opentelemetry::trace::SpanId;
    use opentelemetry::trace::TraceFlags;
    use opentelemetry::trace::TraceId;
    use opentelemetry::trace::TraceState;

    use super::*;

    #[test]
    fn outside_a_trace_nothing_is_added_inside_one_its_context_is() {
        let mut headers = BTreeMap::new();
        inject_current(&mut headers);
        assert!(headers.is_empty());

        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "x")]).unwrap(),
        );
        let _guard = opentelemetry::Context::new()
            .with_remote_span_context(sc)
            .attach();
        inject_current(&mut headers);
        assert_eq!(
            headers[TRACEPARENT],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(headers[TRACESTATE], "vendor=x");

        // A context the caller set itself is kept.
        let mut own = BTreeMap::from([(TRACEPARENT.to_string(), "00-mine".to_string())]);
        inject_current(&mut own);
        assert_eq!(own[TRACEPARENT], "00-mine");
    }
}
