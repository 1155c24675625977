"""Media for every action episode: a snapshot and a short clip, indexed and kept (docs/media.md).

episodes.py  the episodes derived from the finished frame records (the events' own label rule)
ring.py      each camera's last seconds of annotated frames, JPEG-compressed in memory
snapshot.py  the snapshot image: the best frame with the person's box, and their crop beside it
clip.py      one clip's H.264 MP4, written through an ffmpeg process
index.py     the SQLite index of events and retention
writer.py    the writer thread behind a bounded queue; the pipeline's MediaSink
"""
