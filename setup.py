"""skillmimic: physics-based humanoid basketball skills from human+ball demonstrations."""

from setuptools import find_packages, setup

setup(
    name="skillmimic",
    version="0.1.0",
    description="Learn physics-based humanoid interaction skills (SkillMimic / SkillMimic-V2) "
                "on MuJoCo and MuJoCo Warp, trained with rl-games",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["skillmimic", "skillmimic.*", "envs", "envs.*"]),
    install_requires=[
        "torch>=2.4",
        "numpy>=1.26",
        "scipy>=1.10",
        "mujoco>=3.12",
        "mujoco-warp>=3.13",          # OverflowType.ALL; needs mujoco>=3.12
        "warp-lang>=1.18",            # with 1.15-1.17 wp.to_torch fails on our CPU arrays (ValueError)
        "rl-games==1.6.5",
        "gymnasium>=1.0",
        "hydra-core>=1.3",
        "networkx>=3.0",
        "tensorboard>=2.14",
        "roma>=1.5",
        "imageio-ffmpeg>=0.5",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={"test": ["pytest>=7.4"]},
    entry_points={
        "console_scripts": [
            "skillmimic-fk-report=skillmimic.motion.fk_report:main",
        ]
    },
)
