"""The curated raw-data schema the pipeline imports with ImportSchemaGen (`schema.pbtxt`).

Installed with the project (package data), so its path does not depend on where the code
was checked out.
"""

import os

SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.pbtxt")
