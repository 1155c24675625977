from setuptools import find_packages, setup

setup(
    name="realtime",
    version="0.1.0",
    description="Live human action recognition from camera streams: pose keypoints + LSTM.",
    packages=find_packages(include=["realtime", "realtime.*"]),
    package_data={"realtime": ["datasets/*.yaml", "web/templates/*", "web/static/*"]},
    python_requires=">=3.10",
    install_requires=[
        "torch", "pytorch-lightning", "torchmetrics", "mediapipe", "numpy<2",
        "opencv-python", "PyYAML", "paho-mqtt",
    ],
    extras_require={"detectron2": ["detectron2"], "web": ["Flask"], "cluster": ["ray==2.60.0"]},
    entry_points={"console_scripts": ["realtime=realtime.__main__:main"]},
)
