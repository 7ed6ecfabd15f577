//! The HTTP client of the models: our conversation types ([`chat`]), each provider's wire
//! format ([`wire`], [`sse`], [`stream`]), one streamed call with retries ([`client`]) to one model
//! ([`endpoint`]), shared rate limits ([`limits`]), context-window fitting ([`context`]),
//! image checks ([`image`]), one conversation turn by turn ([`session`]) and the named
//! providers with their prices ([`provider`]).
//!
//! It knows nothing of agents, runs, judges or reviews, and imports nothing from them: the
//! built-in agent (`agent::builtin`), LLM judges and LLM reviewers are built on top of it.

pub mod chat;
pub mod client;
pub mod context;
pub mod endpoint;
pub mod image;
pub mod limits;
pub mod provider;
pub mod session;
pub mod sse;
pub mod stream;
pub mod wire;

pub use client::CallError;
pub use endpoint::Endpoint;
