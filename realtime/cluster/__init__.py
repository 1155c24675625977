"""Running the cameras on a Ray cluster (`python -m realtime cluster`); see docs/cluster.md.

plan     which cameras share an actor and what each actor asks Ray for (no Ray needed)
actor    a camera actor: the ordinary in-process Pipeline for its cameras, in a thread
board    the job's status board actor (starts, restarts, each camera's latest figures)
job      the driver: starts the actors, gathers their events, stops them on SIGTERM
restarts one time line per camera across restarts, for the timeline chart
status   `cluster status`
session  connecting to a cluster or starting a local one
cli      the command line
"""
