"""The faces of Tend: the ``tend`` command line and (soon) the web app."""
