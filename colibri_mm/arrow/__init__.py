"""The Arrow layer: bulk import of Arrow data and Parquet files into tables, and
export of tables to Parquet files and datasets."""
