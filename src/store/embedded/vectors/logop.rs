//! The operation log's record bodies: our own stable encoding of a vector write
//! (upsert, delete by ids, delete by filter), independent of the engine's types.
//! Little-endian; vectors as raw `f32`, payloads and filters as JSON.

use serde_json::{Map, Value};

use crate::domain::vector::{Filter, Point, PointId};

const KIND_UPSERT: u8 = 1;
const KIND_DELETE_IDS: u8 = 2;
const KIND_DELETE_FILTER: u8 = 3;

/// One logged write, in a format of our own that does not change with the engine.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum LogOp {
    Upsert(Vec<Point>),
    DeleteIds(Vec<PointId>),
    DeleteFilter(Filter),
}

impl LogOp {
    /// The body without its sequence number.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Upsert(points) => {
                out.push(KIND_UPSERT);
                put_u32(&mut out, points.len());
                for p in points {
                    put_id(&mut out, p.id);
                    put_u32(&mut out, p.vector.len());
                    for x in &p.vector {
                        out.extend_from_slice(&x.to_le_bytes());
                    }
                    put_bytes(
                        &mut out,
                        &serde_json::to_vec(&p.payload).unwrap_or_default(),
                    );
                }
            }
            Self::DeleteIds(ids) => {
                out.push(KIND_DELETE_IDS);
                put_u32(&mut out, ids.len());
                for id in ids {
                    put_id(&mut out, *id);
                }
            }
            Self::DeleteFilter(filter) => {
                out.push(KIND_DELETE_FILTER);
                put_bytes(&mut out, &serde_json::to_vec(filter).unwrap_or_default());
            }
        }
        out
    }

    pub(super) fn decode(mut b: &[u8]) -> Option<Self> {
        let kind = take(&mut b, 1)?[0];
        let op = match kind {
            KIND_UPSERT => {
                let n = get_u32(&mut b)?;
                let mut points = Vec::with_capacity(n.min(65_536));
                for _ in 0..n {
                    let id = get_id(&mut b)?;
                    let dim = get_u32(&mut b)?;
                    let raw = take(&mut b, dim.checked_mul(4)?)?;
                    let vector = raw
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    let payload: Map<String, Value> =
                        serde_json::from_slice(get_bytes(&mut b)?).ok()?;
                    points.push(Point {
                        id,
                        vector,
                        payload,
                    });
                }
                Self::Upsert(points)
            }
            KIND_DELETE_IDS => {
                let n = get_u32(&mut b)?;
                let mut ids = Vec::with_capacity(n.min(65_536));
                for _ in 0..n {
                    ids.push(get_id(&mut b)?);
                }
                Self::DeleteIds(ids)
            }
            KIND_DELETE_FILTER => {
                Self::DeleteFilter(serde_json::from_slice(get_bytes(&mut b)?).ok()?)
            }
            _ => return None,
        };
        b.is_empty().then_some(op)
    }
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_id(out: &mut Vec<u8>, id: PointId) {
    match id {
        PointId::Num(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        PointId::Uuid(u) => {
            out.push(1);
            out.extend_from_slice(u.as_bytes());
        }
    }
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn get_u32(b: &mut &[u8]) -> Option<usize> {
    let raw = take(b, 4)?;
    Some(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize)
}

pub(super) fn get_u64(b: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(b, 8)?.try_into().ok()?))
}

fn get_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let n = get_u32(b)?;
    take(b, n)
}

fn get_id(b: &mut &[u8]) -> Option<PointId> {
    match take(b, 1)?[0] {
        0 => Some(PointId::Num(get_u64(b)?)),
        1 => Some(PointId::Uuid(uuid::Uuid::from_slice(take(b, 16)?).ok()?)),
        _ => None,
    }
}
