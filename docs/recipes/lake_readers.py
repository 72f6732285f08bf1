"""Reads an sfetl lake the way the README's "Scaling out" recipes do, and prints each engine's
answer to the license-utilization question as JSON: per org and license, the seats (total,
used) and how many collected users hold it -- the same numbers as the `license_utilization`
view's `total`, `used` and `held_by_users`.

    python lake_readers.py s3://bucket/prefix MIRROR_DIR [polars] [spark]

- polars reads the object store directly, following each org's newest committed manifest
  (`_sfetl/manifests/org=<org>/<sequence>.json`), so a run still writing is never read;
- Spark reads the local mirror `sfetl pull` made (Hive partitions `org=<org>`): reading S3 from
  Spark needs the hadoop-aws jars, which a pip-installed PySpark does not carry.

S3 settings come from the standard variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION, and AWS_ENDPOINT_URL for an S3-compatible store.
"""

import json
import os
import sys
from urllib.parse import urlparse

TABLES = ["subscriptions", "user_subscriptions", "users", "orgs"]


def committed_files(lake_url):
    """{table: [s3 URL, ...]} over every org's newest committed manifest."""
    import boto3

    url = urlparse(lake_url)
    bucket, prefix = url.netloc, url.path.strip("/")
    root = f"{prefix}/" if prefix else ""
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
    newest = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{root}_sfetl/manifests/"):
        for item in page.get("Contents", []):
            org_dir, name = item["Key"].rsplit("/", 1)
            if name.endswith(".json") and name > newest.get(org_dir, ""):
                newest[org_dir] = name
    files = {}
    for org_dir, name in sorted(newest.items()):
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{org_dir}/{name}")["Body"].read())
        for entry in manifest["files"]:
            files.setdefault(entry["table"], []).append(f"s3://{bucket}/{root}{entry['path']}")
    return files


def with_polars(lake_url):
    import polars as pl

    options = {
        "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID", ""),
        "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        "aws_region": os.environ.get("AWS_REGION", "us-east-1"),
    }
    if os.environ.get("AWS_ENDPOINT_URL"):
        options["aws_endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
        options["aws_allow_http"] = "true"
    files = committed_files(lake_url)
    t = {
        name: pl.scan_parquet(files[name], hive_partitioning=True, storage_options=options)
        for name in TABLES
    }
    holders = (
        t["user_subscriptions"]
        .join(t["users"].select("org", "user_id"), on=["org", "user_id"])
        .join(t["orgs"].select("org"), on="org")
        .group_by("org", "subscription_id")
        .agg(pl.len().alias("held"))
    )
    answer = (
        t["subscriptions"]
        .join(holders, on=["org", "subscription_id"], how="left")
        .select(
            "org",
            "subscription_id",
            "total",
            "used",
            pl.when(pl.col("holders_collected").ne(False) | pl.col("holders_collected").is_null())
            .then(pl.col("held").fill_null(0))
            .alias("held_by_users"),
        )
        .sort("org", "subscription_id")
        .collect()
    )
    return [list(row) for row in answer.iter_rows()]


SPARK_SQL = """
WITH holders AS (
    SELECT us.org, us.subscription_id, count(*) AS held
    FROM user_subscriptions us
    JOIN users u ON u.org = us.org AND u.user_id = us.user_id
    JOIN orgs o ON o.org = us.org
    GROUP BY us.org, us.subscription_id)
SELECT s.org, s.subscription_id, s.total, s.used,
       CASE WHEN s.holders_collected IS NULL OR s.holders_collected THEN coalesce(h.held, 0) END AS held_by_users
FROM subscriptions s
LEFT JOIN holders h ON h.org = s.org AND h.subscription_id = s.subscription_id
ORDER BY s.org, s.subscription_id
"""


def with_spark(mirror):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sfetl-lake")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # `org=0042` stays the text "0042", not the number 42.
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for name in TABLES:
            spark.read.parquet(os.path.join(mirror, name)).createOrReplaceTempView(name)
        rows = spark.sql(SPARK_SQL).collect()
        return [[row[c] for c in ("org", "subscription_id", "total", "used", "held_by_users")] for row in rows]
    finally:
        spark.stop()


def main():
    lake_url, mirror, *engines = sys.argv[1:]
    engines = engines or ["polars", "spark"]
    answers = {}
    if "polars" in engines:
        answers["polars"] = with_polars(lake_url)
    if "spark" in engines:
        answers["spark"] = with_spark(mirror)
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
