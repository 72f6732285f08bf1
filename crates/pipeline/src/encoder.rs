//! Parquet encoding off the async workers: a blocking task writes a table's files from the
//! batches sent to it, while the next page is fetched.

use crate::OrgError;
use arrow::record_batch::RecordBatch;
use sfetl_load::PartitionWriter;

/// A table's files, written by a blocking task from the batches sent to it (two at most in
/// flight, so memory stays bounded by the page size).
pub struct Encoder {
    pub batches: tokio::sync::mpsc::Sender<RecordBatch>,
    task: tokio::task::JoinHandle<Result<(PartitionWriter, Option<PartitionWriter>), OrgError>>,
}

impl Encoder {
    pub fn start(mut writer: PartitionWriter, mut history: Option<PartitionWriter>) -> Encoder {
        let (batches, mut received) = tokio::sync::mpsc::channel::<RecordBatch>(2);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(batch) = received.blocking_recv() {
                writer.write(&batch)?;
                if let Some(history) = history.as_mut() {
                    history.write(&batch)?;
                }
            }
            Ok((writer, history))
        });
        Encoder { batches, task }
    }

    /// Every batch sent is written: the files, or the first error.
    pub async fn finish(self) -> Result<(PartitionWriter, Option<PartitionWriter>), OrgError> {
        drop(self.batches);
        self.task.await?
    }
}
