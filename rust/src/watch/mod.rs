//! A watch stream from socket bytes to events, one call per socket read:
//!
//! ```text
//! response head (head) ─▶ body bytes ─chunked/Content-Length de-framing (chunked)─▶
//! payload slices ─lines (lines)─▶ watch lines ─decode (event)─▶ events;
//! list bodies: page.  (Applying them to a store is the informer core's: informer/.)
//! ```
//!
//! `decoder` holds a stream's state across reads (framing, lines, bytes an early stop
//! kept, event counts) and runs the stages above in one `feed`/`feed_lines` per read.
//!
//! Nothing here does I/O or reads a clock: bytes come in, time arrives as `now`.
pub mod chunked;
pub mod decoder;
pub mod event;
pub mod head;
pub mod lines;
pub mod page;
