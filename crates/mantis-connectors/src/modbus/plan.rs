//! Block reads (pure): points of one table whose registers are contiguous (or within the
//! configured gap) are read with one request, up to the protocol's size limit.

use crate::config::{RegisterPoint, RegisterTable};

/// The most bits one request may read (coils, discrete inputs).
const MAX_BITS: u16 = 2000;

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) table: RegisterTable,
    pub(crate) start: u16,
    pub(crate) count: u16,
    /// Indexes of the points read by this request.
    pub(crate) points: Vec<usize>,
}

impl Block {
    /// How the status shows it, e.g. `holding 100..104` (end exclusive).
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} {}..{}",
            self.table.as_str(),
            self.start,
            u32::from(self.start) + u32::from(self.count)
        )
    }
}

/// Groups `points` into requests of at most `max_registers` registers, merging points that
/// are at most `max_gap` registers apart.
pub(crate) fn plan(points: &[RegisterPoint], max_registers: u16, max_gap: u16) -> Vec<Block> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].table, points[i].address));
    let mut blocks: Vec<Block> = Vec::new();
    for i in order {
        let p = &points[i];
        let start = u32::from(p.address);
        let end = start + u32::from(p.data_type().width());
        let limit = u32::from(if p.table.is_bits() {
            MAX_BITS
        } else {
            max_registers.max(1)
        });
        if let Some(b) = blocks.last_mut()
            && b.table == p.table
        {
            let b_start = u32::from(b.start);
            let b_end = b_start + u32::from(b.count);
            let new_end = b_end.max(end);
            if start <= b_end + u32::from(max_gap) && new_end - b_start <= limit {
                // Fits: `new_end - b_start <= limit <= 2000`, so the count fits in u16.
                b.count = u16::try_from(new_end - b_start).unwrap_or(u16::MAX);
                b.points.push(i);
                continue;
            }
        }
        blocks.push(Block {
            table: p.table,
            start: p.address,
            count: p.data_type().width(),
            points: vec![i],
        });
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataType, Order};

    fn pt(table: RegisterTable, address: u16, dt: DataType) -> RegisterPoint {
        RegisterPoint {
            sensor: format!("S{address}"),
            table,
            address,
            data_type: Some(dt),
            word_order: Order::Big,
            byte_order: Order::Big,
            scale: 1.0,
            offset: 0.0,
            unit: None,
        }
    }

    #[test]
    fn contiguous_points_share_one_request() {
        use RegisterTable::*;
        let points = vec![
            pt(Holding, 4, DataType::F32),
            pt(Holding, 0, DataType::U16),
            pt(Holding, 1, DataType::I16),
            pt(Holding, 2, DataType::U32),
            pt(Holding, 10, DataType::U16),
            pt(Input, 0, DataType::U16),
            pt(Coil, 3, DataType::Bool),
            pt(Coil, 4, DataType::Bool),
        ];
        let blocks = plan(&points, 125, 0);
        let described: Vec<String> = blocks.iter().map(Block::describe).collect();
        assert_eq!(
            described,
            vec!["holding 0..6", "holding 10..11", "input 0..1", "coil 3..5"]
        );
        assert_eq!(blocks[0].points, vec![1, 2, 3, 0]);
        // A gap of 4 registers is bridged when allowed.
        let blocks = plan(&points, 125, 4);
        assert_eq!(blocks[0].describe(), "holding 0..11");
    }

    #[test]
    fn blocks_respect_the_size_limit() {
        let points: Vec<RegisterPoint> = (0..10)
            .map(|a| pt(RegisterTable::Holding, a * 2, DataType::F32))
            .collect();
        let blocks = plan(&points, 8, 0);
        assert_eq!(blocks.len(), 3);
        assert!(blocks.iter().all(|b| b.count <= 8));
        assert_eq!(blocks.iter().map(|b| b.points.len()).sum::<usize>(), 10);
        // The same register read twice (two decodings) is fine.
        let dup = vec![
            pt(RegisterTable::Holding, 7, DataType::U16),
            pt(RegisterTable::Holding, 7, DataType::I16),
        ];
        assert_eq!(plan(&dup, 125, 0)[0].describe(), "holding 7..8");
    }
}
