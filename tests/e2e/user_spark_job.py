"""A Spark job as a job runner submits it for a user: it reports which uid runs it,
whether the S3A keys in its conf are the driver's own credentials, and what those
credentials reach (user_probes.planes_of). Copied into the users' shared directory.

Usage: spark-submit user_spark_job.py PARAMS_JSON
"""

import json
import os
import sys

from pyspark.sql import SparkSession

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import user_probes  # noqa: E402

params = json.loads(sys.argv[1])
spark = SparkSession.builder.appName("scoped-job").getOrCreate()
conf = dict(spark.sparkContext.getConf().getAll())
out = user_probes.planes_of(params)
key = os.environ.get("AWS_ACCESS_KEY_ID")
out["conf_key_is_driver_key"] = bool(key) and conf.get("spark.hadoop.fs.s3a.access.key") == key
out["executor_key_is_driver_key"] = bool(key) and conf.get("spark.executorEnv.AWS_ACCESS_KEY_ID") == key
spark.stop()
print("RESULT " + json.dumps(out))
