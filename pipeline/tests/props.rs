//! Property tests of the executor's pure logic, without a GPU: stage-list
//! parsing, the split over GPUs, the event graph's shape.
use pc_pipeline::exec::split::split_chunks;
use pc_pipeline::{EdgeKind, EventGraph, StageRegistry};
use proptest::prelude::*;

proptest! {
    /// Any text as a stage list: stages or a one-line error, never a panic.
    #[test]
    fn stage_lists_never_panic(s in "[a-z0-9,\\- ]{0,40}") {
        match StageRegistry::builtin().parse(&s) {
            Ok(stages) => prop_assert_eq!(stages.len(), s.split(',').count()),
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    /// Contiguous, in order, as even as possible, none empty.
    #[test]
    fn splits_cover_every_chunk_once(chunks in 0usize..10_000, gpus in 1usize..17) {
        let r = split_chunks(chunks, gpus);
        prop_assert_eq!(r.len(), gpus.min(chunks));
        prop_assert_eq!(r.iter().map(|x| x.len()).sum::<usize>(), chunks);
        prop_assert!(r.windows(2).all(|w| w[0].end == w[1].start));
        prop_assert!(r.first().is_none_or(|x| x.start == 0));
        let (lo, hi) = (r.iter().map(|x| x.len()).min().unwrap_or(0), r.iter().map(|x| x.len()).max().unwrap_or(0));
        prop_assert!(hi - lo <= 1 && (chunks == 0 || lo >= 1));
    }

    /// Counted from the definition: S-1 rings, a filled edge per chunk and a
    /// freed edge per chunk that has a successor K later, each once.
    #[test]
    fn graph_edges_count_and_index(stages in 1usize..7, chunks in 0usize..40, k in 1usize..8) {
        let g = EventGraph::new(stages, chunks, k);
        let rings = stages.saturating_sub(1);
        let filled = g.edges().iter().filter(|e| e.kind == EdgeKind::Filled).count();
        let freed = g.edges().iter().filter(|e| e.kind == EdgeKind::Freed).count();
        prop_assert_eq!(filled, rings * chunks);
        prop_assert_eq!(freed, rings * chunks.saturating_sub(k));
        let mut incoming = 0;
        for s in 0..stages {
            for c in 0..chunks {
                for e in g.waits_of(s, c) {
                    prop_assert_eq!(e.to, (s, c));
                    prop_assert!(g.signals(e.from.0, e.from.1));
                    incoming += 1;
                }
            }
        }
        prop_assert_eq!(incoming, g.edges().len());
        prop_assert!(g.event_pool_size() > k.min(chunks.max(1)) - 1);
    }
}
