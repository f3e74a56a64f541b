//! Registers → values (pure): data type, word and byte order, scale and offset.

use crate::config::{DataType, Order, RegisterPoint};

/// The raw value of `point` from the registers of its block, `words` starting at the point's
/// first register; `None` when the answer is too short.
pub(crate) fn raw_from_registers(words: &[u16], point: &RegisterPoint) -> Option<f64> {
    let dt = point.data_type();
    let fix = |w: u16| match point.byte_order {
        Order::Big => w,
        Order::Little => w.swap_bytes(),
    };
    let pair = || -> Option<u32> {
        let (a, b) = (fix(*words.first()?), fix(*words.get(1)?));
        let (hi, lo) = match point.word_order {
            Order::Big => (a, b),
            Order::Little => (b, a),
        };
        Some((u32::from(hi) << 16) | u32::from(lo))
    };
    Some(match dt {
        DataType::U16 => f64::from(fix(*words.first()?)),
        DataType::I16 => f64::from(fix(*words.first()?) as i16),
        DataType::U32 => f64::from(pair()?),
        DataType::I32 => f64::from(pair()? as i32),
        DataType::F32 => f64::from(f32::from_bits(pair()?)),
        DataType::Bool => return None,
    })
}

/// The value of a bit point.
pub(crate) fn raw_from_bit(bit: bool) -> f64 {
    if bit { 1.0 } else { 0.0 }
}

/// `raw * scale + offset`.
pub(crate) fn scaled(raw: f64, point: &RegisterPoint) -> f64 {
    raw * point.scale + point.offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegisterTable;

    fn point(dt: DataType, word: Order, byte: Order) -> RegisterPoint {
        RegisterPoint {
            sensor: "S".into(),
            table: RegisterTable::Holding,
            address: 0,
            data_type: Some(dt),
            word_order: word,
            byte_order: byte,
            scale: 1.0,
            offset: 0.0,
            unit: None,
        }
    }

    /// The registers of `bytes` (big-endian, as on the wire) in the given orders.
    fn regs(bytes: [u8; 4], word: Order, byte: Order) -> Vec<u16> {
        let mut w = [
            u16::from_be_bytes([bytes[0], bytes[1]]),
            u16::from_be_bytes([bytes[2], bytes[3]]),
        ];
        if word == Order::Little {
            w.swap(0, 1);
        }
        if byte == Order::Little {
            w = [w[0].swap_bytes(), w[1].swap_bytes()];
        }
        w.to_vec()
    }

    #[test]
    fn every_type_decodes_in_every_order() {
        use Order::{Big, Little};
        for word in [Big, Little] {
            for byte in [Big, Little] {
                let f = regs((-12.5f32).to_be_bytes(), word, byte);
                assert_eq!(
                    raw_from_registers(&f, &point(DataType::F32, word, byte)),
                    Some(-12.5)
                );
                let u = regs(3_000_000_000u32.to_be_bytes(), word, byte);
                assert_eq!(
                    raw_from_registers(&u, &point(DataType::U32, word, byte)),
                    Some(3_000_000_000.0)
                );
                let i = regs((-70_000i32).to_be_bytes(), word, byte);
                assert_eq!(
                    raw_from_registers(&i, &point(DataType::I32, word, byte)),
                    Some(-70_000.0)
                );
            }
        }
        assert_eq!(
            raw_from_registers(&[0xFFFE], &point(DataType::I16, Big, Big)),
            Some(-2.0)
        );
        assert_eq!(
            raw_from_registers(&[0xFFFE], &point(DataType::U16, Big, Big)),
            Some(65534.0)
        );
        assert_eq!(
            raw_from_registers(&[0x3412], &point(DataType::U16, Big, Little)),
            Some(4660.0)
        );
    }

    #[test]
    fn short_answers_and_scaling() {
        assert_eq!(
            raw_from_registers(&[1], &point(DataType::F32, Order::Big, Order::Big)),
            None
        );
        assert_eq!(
            raw_from_registers(&[], &point(DataType::U16, Order::Big, Order::Big)),
            None
        );
        let mut p = point(DataType::U16, Order::Big, Order::Big);
        p.scale = 0.1;
        p.offset = -40.0;
        assert!((scaled(655.0, &p) - 25.5).abs() < 1e-9);
        assert_eq!(raw_from_bit(true), 1.0);
    }
}
