//! gRPC plumbing both services share.

/// Accepted connections with TCP_NODELAY: without it, Nagle's algorithm
/// and delayed ACKs add ~40 ms to a small unary response.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// How long a stopping server waits for open calls (a load balancer's
/// health watch, a watch of breaches) before it drops them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `serving` (a server that stops taking calls once `shutdown` fires
/// and then waits for the open ones) and gives up waiting [`SHUTDOWN_GRACE`]
/// after `shutdown`: a stream that never ends cannot hold the process.
pub async fn serve_until<E>(
    serving: impl std::future::Future<Output = Result<(), E>>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), E> {
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => return served,
        _ = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, serving).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "calls still open after the grace: dropped");
            Ok(())
        }
    }
}

/// Server reflection for `baton.v1` and the health service, so generic
/// clients (grpcurl, any reflection client) need no .proto files.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(baton_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// Answers requests tonic could not decode with the codes the gRPC status
/// code guide gives them, instead of tonic's defaults:
///
/// | tonic answers | for | this layer answers |
/// |---|---|---|
/// | INTERNAL `failed to decode Protobuf message: …` | bytes that are not the request message (invalid UTF-8 in a string field, a truncated or garbled message) | INVALID_ARGUMENT |
/// | OUT_OF_RANGE `… message length too large …` | a request over the server's decoding limit | RESOURCE_EXHAUSTED |
///
/// Both are the client's doing, and a client must not retry them as it
/// might an INTERNAL. The message is kept. Decoding fails before a handler
/// runs, so tonic answers with a trailers-only response (the status in the
/// headers): only those are looked at, and only those two statuses are
/// rewritten; an INTERNAL a handler returns is left alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeErrorStatusLayer;

impl<S> tower::Layer<S> for DecodeErrorStatusLayer {
    type Service = DecodeErrorStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrorStatus { inner }
    }
}

/// The service [`DecodeErrorStatusLayer`] wraps around a gRPC server.
#[derive(Debug, Clone)]
pub struct DecodeErrorStatus<S> {
    inner: S,
}

/// What tonic's prost codec says when a message does not decode.
const UNDECODABLE: &str = "failed to decode Protobuf message";
/// What tonic says when a message is over the decoding limit.
const TOO_LARGE: &str = "decoded message length too large";

impl<S, RequestBody, ResponseBody> tower::Service<http::Request<RequestBody>>
    for DecodeErrorStatus<S>
where
    S: tower::Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            remap_decode_error(response.headers_mut());
            Ok(response)
        })
    }
}

/// Rewrites a decode failure's status in trailers-only response headers.
fn remap_decode_error(headers: &mut http::HeaderMap) {
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    let code = match status.code() {
        tonic::Code::Internal if status.message().starts_with(UNDECODABLE) => {
            tonic::Code::InvalidArgument
        }
        tonic::Code::OutOfRange if status.message().contains(TOO_LARGE) => {
            tonic::Code::ResourceExhausted
        }
        _ => return,
    };
    if let Err(e) = tonic::Status::new(code, status.message()).add_header(headers) {
        tracing::warn!(error = %e, "could not rewrite a decode error's status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: tonic::Status) -> tonic::Status {
        let mut response = status.into_http::<()>();
        remap_decode_error(response.headers_mut());
        tonic::Status::from_header_map(response.headers()).expect("a status")
    }

    #[test]
    fn undecodable_requests_are_the_clients_fault() {
        let status = answered(tonic::Status::internal(
            "failed to decode Protobuf message: HandoffEvent.event_id: invalid string value: data is not UTF-8 encoded",
        ));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("HandoffEvent.event_id"));
        let status = answered(tonic::Status::out_of_range(
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
        ));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for status in [
            tonic::Status::internal("nats error: something broke"),
            tonic::Status::out_of_range("page_token: past the end"),
            tonic::Status::invalid_argument("failed to decode Protobuf message"),
        ] {
            let code = status.code();
            assert_eq!(answered(status).code(), code);
        }
    }
}
