//! Tests of the Responses API upstream side, one file per part, and the properties that
//! tie it to the client side (what `responses::encode` writes, the upstream side reads
//! back).

mod properties;
mod request;
mod response;
mod stream;
