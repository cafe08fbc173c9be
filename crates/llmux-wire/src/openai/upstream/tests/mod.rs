//! Tests of the OpenAI upstream side, one file per part.

mod request;
mod response;
mod stream;
