//! A FIFO of byte chunks that keeps its first chunk inline.
//!
//! A stream's send and receive queues hold one chunk most of the time (an
//! RPC call's request or response is one message): a `VecDeque` would
//! allocate for that one chunk, on every stream, on both sides.

use std::collections::VecDeque;

use bytes::Bytes;

/// Chunks in order; `rest` is empty whenever `head` is.
#[derive(Debug, Default)]
pub(crate) struct ChunkQueue {
    head: Option<Bytes>,
    rest: VecDeque<Bytes>,
}

impl ChunkQueue {
    pub(crate) fn push_back(&mut self, chunk: Bytes) {
        if self.head.is_none() {
            self.head = Some(chunk);
        } else {
            self.rest.push_back(chunk);
        }
    }

    pub(crate) fn pop_front(&mut self) -> Option<Bytes> {
        let head = self.head.take()?;
        self.head = self.rest.pop_front();
        Some(head)
    }

    pub(crate) fn front_mut(&mut self) -> Option<&mut Bytes> {
        self.head.as_mut()
    }

    pub(crate) fn back_mut(&mut self) -> Option<&mut Bytes> {
        match self.rest.back_mut() {
            Some(back) => Some(back),
            None => self.head.as_mut(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.rest.len()
    }

    pub(crate) fn clear(&mut self) {
        self.head = None;
        self.rest.clear();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.head.iter().chain(self.rest.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_the_inline_slot() {
        let mut q = ChunkQueue::default();
        assert!(q.is_empty());
        assert_eq!(q.back_mut(), None);
        for i in 0..5u8 {
            q.push_back(Bytes::from(vec![i]));
        }
        assert_eq!(q.len(), 5);
        assert_eq!(q.back_mut().map(|b| b[0]), Some(4));
        assert_eq!(q.iter().map(|b| b[0]).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
        assert_eq!(q.pop_front().map(|b| b[0]), Some(0));
        q.push_back(Bytes::from_static(&[5]));
        let mut out = Vec::new();
        while let Some(b) = q.pop_front() {
            out.push(b[0]);
        }
        assert_eq!(out, [1, 2, 3, 4, 5]);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn one_chunk_allocates_nothing() {
        let mut q = ChunkQueue::default();
        q.push_back(Bytes::from_static(b"call"));
        assert_eq!(q.rest.capacity(), 0);
        assert_eq!(q.back_mut().map(|b| b.len()), Some(4));
        assert_eq!(q.front_mut().map(|b| b.len()), Some(4));
        q.clear();
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
    }
}
