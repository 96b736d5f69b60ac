//! Built-in embedder throughput: chunk-sized paragraphs (~800 characters) embedded in
//! batches of 64, as the ingest worker does, and single short queries, as search does.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ragbrain::config::Settings;
use ragbrain::embed::Embedder;
use ragbrain::embed::builtin::BuiltinEmbedder;

fn paragraph(i: usize) -> String {
    let sentence = format!(
        "Report {i} describes how the Lisbon office of Acme Corporation shipped order {} \
         to Porto after the quarterly review found delays in the northern warehouse. ",
        i * 7
    );
    sentence.repeat(4)
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let embedder = BuiltinEmbedder::load(&Settings::load(None).unwrap().embedder).unwrap();
    let batch: Vec<String> = (0..64).map(paragraph).collect();
    let mut group = c.benchmark_group("embed");
    group.throughput(Throughput::Elements(batch.len() as u64));
    group.bench_function("batch_of_64_paragraphs", |b| {
        b.iter(|| runtime.block_on(embedder.embed(batch.clone())).unwrap())
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_query", |b| {
        b.iter(|| {
            runtime
                .block_on(embedder.embed(vec!["who shipped the order to Porto?".into()]))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
