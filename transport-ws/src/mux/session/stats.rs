//! Figures a session reports about itself, per stream and per connection
//! (and, for tests, how a stream's unread bytes are held).

use super::Session;
use crate::mux::stream_id::StreamId;

/// Per-stream figures, for stats and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Bytes received and not yet read by the application.
    pub buffered: u64,
    /// Bytes the peer may still send us.
    pub peer_credit: u64,
    /// Our receive window.
    pub window: u32,
    /// Bytes we may still send.
    pub send_credit: u64,
    /// Bytes sent that the peer has not returned as credit.
    pub in_flight: u64,
    /// Bytes written by the application and not yet handed to the socket.
    pub queued_send: u64,
}

/// Per-connection figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Streams tracked (not yet fully closed and released).
    pub streams_open: usize,
    /// Peer-opened streams waiting for `accept`.
    pub stream_backlog: usize,
    /// Received bytes buffered across all streams.
    pub buffered: u64,
    /// Written bytes queued for the socket across all streams.
    pub queued_send: u64,
    /// Control frames waiting for the socket.
    pub queued_control: usize,
    /// Streams the peer opened that we refused (limits, shutdown).
    pub refused: u64,
    /// Streams the peer opened and aborted before we finished answering
    /// (counted against the reset budget with `refused`).
    pub aborted_by_peer: u64,
    /// ERROR and CLOSE frames on the peer's streams that changed nothing.
    pub idle_control: u64,
    /// WebSocket pings received.
    pub pings: u64,
    /// DATA messages received with no payload.
    pub empty_data: u64,
    /// Receive windows granted, all streams together: the most the peer
    /// can make us buffer now (at most `connection_receive_buffer`).
    pub receive_windows: u64,
    /// Payload bytes of the WebSocket messages read from the socket (0 from
    /// a bare session: the connection's driver counts them).
    pub bytes_received: u64,
    /// Payload bytes of the WebSocket messages handed to the socket (as
    /// `bytes_received`).
    pub bytes_sent: u64,
}

impl Session {
    /// Figures for one stream.
    pub fn stream_stats(&self, id: StreamId) -> Option<StreamStats> {
        let s = self.streams.get(&id)?;
        Some(StreamStats {
            buffered: s.window.buffered(),
            peer_credit: s.window.peer_credit(),
            window: s.window.window(),
            send_credit: s.credit.available(),
            in_flight: s.credit.in_flight(),
            queued_send: s.outgoing_bytes as u64,
        })
    }

    /// Figures for every stream alive, by id, in id order.
    pub fn all_stream_stats(&self) -> Vec<(u64, StreamStats)> {
        let mut ids: Vec<StreamId> = self.streams.keys().copied().collect();
        ids.sort_unstable_by_key(|id| id.0);
        ids.into_iter()
            .filter_map(|id| Some((id.0, self.stream_stats(id)?)))
            .collect()
    }

    /// How many separate chunks a stream has queued for its reader.
    #[cfg(test)]
    pub(crate) fn queued_chunks(&self, id: StreamId) -> usize {
        self.streams
            .get(&id)
            .map_or(0, |s| s.recv_buf.queued_chunks())
    }

    /// Capacity of the buffer small payloads for a stream's reader are
    /// copied into.
    #[cfg(test)]
    pub(crate) fn tail_capacity(&self, id: StreamId) -> usize {
        self.streams
            .get(&id)
            .map_or(0, |s| s.recv_buf.tail_capacity())
    }

    /// Where each chunk queued for a stream's reader starts.
    #[cfg(test)]
    pub(crate) fn queued_ptrs(&self, id: StreamId) -> Vec<*const u8> {
        self.streams
            .get(&id)
            .map_or(Vec::new(), |s| s.recv_buf.queued_ptrs())
    }

    /// Copy buffers the connection keeps.
    #[cfg(test)]
    pub(crate) fn copy_buffers(&self) -> usize {
        self.copies.buffers()
    }

    /// Figures for the connection.
    pub fn stats(&self) -> SessionStats {
        SessionStats {
            streams_open: self.streams.len(),
            stream_backlog: self.accept_queue.len(),
            buffered: self.streams.values().map(|s| s.window.buffered()).sum(),
            queued_send: self.queued_send as u64,
            queued_control: self.control.len(),
            refused: self.refused,
            aborted_by_peer: self.flood_counts.aborted_by_peer,
            idle_control: self.flood_counts.idle_control,
            pings: self.flood_counts.pings,
            empty_data: self.flood_counts.empty_data,
            receive_windows: self
                .streams
                .values()
                .map(|s| u64::from(s.window.window()))
                .sum(),
            // The driver counts bytes; the connection fills these in.
            bytes_received: 0,
            bytes_sent: 0,
        }
    }
}
