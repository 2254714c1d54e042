//! The requests of the clouds answered asynchronously (GCP, Azure, OCI, OpenStack, DigitalOcean,
//! Hetzner, Huawei): their body is read (bounded), the throttle applies, and the cloud's handler
//! answers. The EC2-style services (AWS, Alibaba, Tencent, Exoscale) stay on the synchronous path
//! of [`super::handler`], which never reads a body.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use imds_guard_core::cloud::Cloud;

use super::answer::{self, Answer};
use super::handler::{self, State};
use super::{azure, digitalocean, gcp, hetzner, linode, oci, openstack};

/// The largest request body read (guest attributes, a password, scheduled-event starts).
const MAX_BODY: usize = 64 * 1024;

/// Answers one request of an asynchronous cloud.
pub(crate) async fn answer(state: Arc<State>, req: Request<Incoming>) -> Answer {
    let cloud = state.cloud;
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            let status = if e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return refusal(cloud, status);
        }
    };
    if handler::throttled(&state) {
        return refusal(cloud, StatusCode::TOO_MANY_REQUESTS);
    }
    let req = Request::from_parts(parts, body);
    respond(state, req).await
}

/// The cloud's handler for a request whose body has been read.
pub(crate) async fn respond(state: Arc<State>, req: Request<Bytes>) -> Answer {
    match state.cloud {
        Cloud::Gcp => gcp::handle(state, req).await,
        Cloud::Azure => azure::handle(&req),
        Cloud::Oci => oci::handle(&req),
        // Huawei's service is OpenStack's with its own additions (`openstack` reads the cloud).
        Cloud::Openstack | Cloud::Huawei => openstack::handle(&state, &req),
        Cloud::Digitalocean => digitalocean::handle(&req),
        Cloud::Hetzner => hetzner::handle(&req),
        Cloud::Linode => linode::handle(&state, &req),
        // Served synchronously by `handler`; kept whole here so nothing is lost if routed here.
        Cloud::Aws | Cloud::Alibaba | Cloud::Tencent | Cloud::Exoscale => {
            handler::handle_unthrottled(&state, &req).response
        }
    }
}

/// A refusal made before the cloud's handler ran, in the cloud's style.
fn refusal(cloud: Cloud, status: StatusCode) -> Answer {
    let reason = status.canonical_reason().unwrap_or("Error");
    match cloud {
        Cloud::Gcp => gcp::decorate(gcp::error(status, reason)),
        Cloud::Azure => azure::decorate(azure::error(status, reason)),
        Cloud::Oci => oci::error(status, &reason.replace(' ', ""), reason),
        Cloud::Aws
        | Cloud::Alibaba
        | Cloud::Openstack
        | Cloud::Digitalocean
        | Cloud::Hetzner
        | Cloud::Tencent
        | Cloud::Huawei
        | Cloud::Exoscale
        | Cloud::Linode => answer::status_line(status, "text/plain"),
    }
}
