"""Build step that setup.cfg cannot declare: the wheel carries the shipped models.

models/ stays at the top of the repository (the design card's layout); the build copies its
files into the package as ``device/model_files/`` so that ``pip install .`` (not editable) gives a
gate that finds its models from any folder (device/models/model.py: ``shipped_models_dir``)."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODEL_SUFFIXES = (".onnx", ".json", ".sig", ".npz", ".npy")   # .sig: the manifest's signature


class BuildWithModels(build_py):
    def run(self):
        super().run()
        if self.editable_mode:             # an editable install reads models/ in place
            return
        src = Path(__file__).resolve().parent / "models"
        dst = Path(self.build_lib) / "device" / "model_files"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            if f.suffix in MODEL_SUFFIXES:
                shutil.copy2(f, dst / f.name)


setup(cmdclass={"build_py": BuildWithModels})
