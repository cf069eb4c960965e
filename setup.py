"""Packaging for paretopo. Metadata lives in settings.ini (nbdev 2); extras are declared here.

Layers and their extras:
  (none)    the algorithm layer: numpy and moocore (C kernels for ranks and hypervolumes)
  tools     tool environments: retriever (bm25s) and math grading (math-verify)
  train     the system layer on CPU or GPU: torch, transformers, TRL, peft, accelerate, gguf
  qlora     4-bit NF4 + LoRA through bitsandbytes (runs on CPU too)
  unsloth   Unsloth backend: needs CUDA, trl <= 1.15 and transformers <= 5.17 (own environment)
  dev       everything to build, test and document the project (exact pins in constraints.txt)
  notebooks read and run the notebooks in JupyterLab: `dev` (the notebooks' own tests import it) plus
            JupyterLab and ipywidgets (TRL's progress bars); `dev` includes these two as well, so
            that CI executes the notebooks in the same environment a reader gets
"""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]
for key in "version description keywords author author_email license min_python lib_name user".split():
    assert key in cfg, f"settings.ini is missing `{key}`"

licenses = {"apache2": "Apache-2.0"}  # SPDX expression; license classifiers are deprecated
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable"]
py_versions = "3.10 3.11 3.12 3.13".split()
min_python = cfg["min_python"]
license_spdx = licenses[cfg["license"].lower()]

tools = ["bm25s>=0.3", "PyStemmer>=2.2", "math-verify>=0.9", "PyYAML>=6", "datasets>=4"]  # datasets: task data (paretopo.data)
notebooks = ["jupyterlab>=4.2", "ipywidgets>=8.1"]
train = ["torch>=2.4", "transformers>=5.0", "trl>=1.15", "peft>=0.17", "accelerate>=1.10",
         "datasets>=4", "plotly>=6", "tqdm>=4.66", "PyYAML>=6",
         "gguf>=0.10"]  # GGUF files (llama.cpp): read by transformers, converted once (paretopo.models.gguf_to_hf)
extras = {
    "tools": tools,
    "train": train + tools,
    "qlora": train + tools + ["bitsandbytes>=0.49"],
    "unsloth": ["unsloth>=2026.10", "trl<=1.15.0", "transformers<=5.17.0", "datasets<5"] + tools,
    "dev": train + tools + [
        "bitsandbytes>=0.49", "nbdev==2.4.14", "execnb==0.1.16", "fastcore>=1.12.3,<2", "ghapi<3",
        "moocore>=0.3", "hypothesis>=6.100", "pytest>=8", "jupytext>=1.16", "ipykernel>=6",
        "nbformat>=5.9", "nbconvert>=7", "nbclient>=0.10", "plotly>=6", "smalldocs>=0.5.4", "tensorboard>=2.16",
    ] + notebooks,
}
extras["notebooks"] = list(extras["dev"])

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    license=license_spdx,
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"])],
        "Intended Audience :: " + cfg["audience"].title(),
        "Natural Language :: " + cfg["language"].title(),
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ] + ["Programming Language :: Python :: " + v for v in py_versions[py_versions.index(min_python):]],
    url=cfg["git_url"],
    packages=setuptools.find_packages(include=["paretopo", "paretopo.*"]),
    include_package_data=True,
    install_requires=cfg.get("requirements", "").split(),
    extras_require=extras,
    python_requires=">=" + min_python,
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    zip_safe=False,
    entry_points={"console_scripts": cfg.get("console_scripts", "").split(), "nbdev": [f"{cfg['lib_name']}={cfg['lib_name']}._modidx:d"]},
    description=cfg["description"],
    keywords=cfg["keywords"],
    author=cfg["author"],
    author_email=cfg["author_email"],
)
