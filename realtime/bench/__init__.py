"""Measuring the pipeline for `realtime benchmark`: real clips in, dataclasses and JSON out.

clips.py builds the inputs; throughput.py, cameras.py, soak.py, web_job.py and detectron2.py
measure (each returns a JSON-ready dict); report.py turns results into Markdown and PNG;
rtsp.py starts the real RTSP server (rtsp_server.py, run by Debian's python3) for the soak
run and the tests. Every run uses the pipeline's own steps, never copies of them.
"""
