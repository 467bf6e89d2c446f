"""What the Vertex/Kubeflow runner adds to a PipelineConfig: image, engines, accelerators.

`create_pipeline(config)` stays the one graph; these options only choose where its parts run
(the container image, Beam on Dataflow or in-process, the Trainers on a Vertex AI custom job
with a TPU or GPU). Plain dataclasses, no TFX import: `uet --help` must stay fast.
"""

import dataclasses
import re
from typing import Optional, Tuple

VERTEX = "vertex"
KUBEFLOW = "kubeflow"
TARGETS = (VERTEX, KUBEFLOW)

DIRECT = "direct"
DATAFLOW = "dataflow"

# Where kubeflow/Dockerfile puts the project inside the image (tests/test_dockerfile.py
# checks the two agree).
IMAGE_PROJECT_DIR = "/opt/uet"

# Vertex machine types whose accelerator is a TPU even without an accelerator_type
# (TPU VMs: ct5lp-hightpu-4t, ct6e-standard-4t, ...), and the legacy TPU pod slice type.
_TPU_MACHINE = re.compile(r"^(cloud-tpu|ct\d)")


@dataclasses.dataclass(frozen=True)
class DataflowOptions:
  """Beam on Dataflow for the Beam-powered components (ExampleGen, StatisticsGen,
  Transform, Evaluator).

  Attributes:
    project: GCP project of the Dataflow jobs.
    region: Dataflow region (e.g. us-central1).
    temp_location: gs:// directory for Dataflow's temporary and staging files.
    sdk_container_image: the workers' image; the pipeline image by default, so workers
      import exactly the code that built the job (the TFX image is a Beam worker image).
    extra_args: more Beam arguments, e.g. `--max_num_workers=4`.
  """
  project: str
  region: str
  temp_location: str
  sdk_container_image: Optional[str] = None
  extra_args: Tuple[str, ...] = ()

  def __post_init__(self):
    missing = [flag for flag, value in (("--project", self.project),
                                        ("--region", self.region),
                                        ("--temp-location", self.temp_location)) if not value]
    if missing:
      raise ValueError(f"--beam-runner dataflow needs {', '.join(missing)}")
    if not self.temp_location.startswith("gs://"):
      raise ValueError(f"--temp-location must be a gs:// path for Dataflow, got "
                       f"{self.temp_location!r}")

  def beam_args(self, image: str) -> Tuple[str, ...]:
    """The Beam pipeline arguments that put a component's Beam job on Dataflow."""
    return (
        "--runner=DataflowRunner",
        f"--project={self.project}",
        f"--region={self.region}",
        f"--temp_location={self.temp_location}",
        f"--sdk_container_image={self.sdk_container_image or image}",
        # Custom SDK containers need Runner v2 (the default for Python since Beam 2.45,
        # stated so older service defaults cannot pick v1).
        "--experiments=use_runner_v2",
    ) + tuple(self.extra_args)


@dataclasses.dataclass(frozen=True)
class VertexTrainingOptions:
  """Runs the Trainers as Vertex AI custom jobs (TFX's google_cloud_ai_platform Trainer).

  Attributes:
    project: GCP project of the custom jobs.
    region: Vertex region (TPUs exist only in some, e.g. us-central1).
    machine_type: e.g. `cloud-tpu` (with TPU_V2/TPU_V3 x 8), `ct5lp-hightpu-4t` (TPU v5e),
      `n1-standard-8` (with NVIDIA_TESLA_T4).
    accelerator_type: e.g. TPU_V3, NVIDIA_TESLA_T4; None for TPU-VM machine types that
      imply theirs, or CPU only.
    accelerator_count: accelerators per replica (required with accelerator_type).
    tpu_topology: TPU slice topology for TPU-VM machine types (e.g. `2x2`), if needed.
    image: the training image; the pipeline image by default.
  """
  project: str
  region: str
  machine_type: str
  accelerator_type: Optional[str] = None
  accelerator_count: int = 0
  tpu_topology: Optional[str] = None
  image: Optional[str] = None

  def __post_init__(self):
    missing = [flag for flag, value in (("--project", self.project),
                                        ("--region", self.region)) if not value]
    if missing:
      raise ValueError(f"--trainer-machine-type needs {', '.join(missing)}")
    if self.accelerator_type and self.accelerator_count <= 0:
      raise ValueError(f"--trainer-accelerator-type {self.accelerator_type} needs "
                       "--trainer-accelerator-count > 0 (e.g. 8 for TPU_V3, 1 for a GPU)")
    if self.accelerator_count and not self.accelerator_type:
      raise ValueError("--trainer-accelerator-count needs --trainer-accelerator-type")
    if self.accelerator_type and not re.fullmatch(r"(TPU|NVIDIA)_[A-Z0-9_]+",
                                                  self.accelerator_type):
      raise ValueError(f"--trainer-accelerator-type {self.accelerator_type!r} is not a "
                       "Vertex accelerator type (TPU_V2, TPU_V3, NVIDIA_TESLA_T4, "
                       "NVIDIA_L4, ...)")

  @property
  def is_tpu(self) -> bool:
    return bool((self.accelerator_type or "").startswith("TPU_")
                or _TPU_MACHINE.match(self.machine_type))

  def job_args(self, image: str) -> dict:
    """`ai_platform_training_args` of the Trainer: a Vertex CustomJob with one worker pool.

    The TFX executor fills in the container command (it runs the stock Trainer executor,
    which calls `trainer.run_fn.run_fn`), so only the machine and the image are given.
    """
    machine_spec = {"machine_type": self.machine_type}
    if self.accelerator_type:
      machine_spec["accelerator_type"] = self.accelerator_type
      machine_spec["accelerator_count"] = self.accelerator_count
    if self.tpu_topology:
      machine_spec["tpu_topology"] = self.tpu_topology
    return {
        # The TFX executor pops `project` before sending the job.
        "project": self.project,
        "job_spec": {"worker_pool_specs": [{
            "machine_spec": machine_spec,
            "replica_count": 1,
            "container_spec": {"image_uri": self.image or image},
        }]},
    }


@dataclasses.dataclass(frozen=True)
class CompileOptions:
  """Everything `uet compile` needs besides the PipelineConfig.

  Attributes:
    target: "vertex" (Vertex AI Pipelines) or "kubeflow" (Kubeflow Pipelines 2.x).
    image: the container image every component runs in (built from kubeflow/Dockerfile).
    dataflow: Beam on Dataflow; None keeps the config's Beam args (DirectRunner).
    vertex_training: Trainers as Vertex AI custom jobs; None trains in the component's pod.
  """
  target: str
  image: str
  dataflow: Optional[DataflowOptions] = None
  vertex_training: Optional[VertexTrainingOptions] = None

  def __post_init__(self):
    if self.target not in TARGETS:
      raise ValueError(f"unknown target {self.target!r}; expected one of {TARGETS}")
    if not self.image:
      raise ValueError("--image is required: the container image built from "
                       "kubeflow/Dockerfile (see kubeflow/README.md)")
