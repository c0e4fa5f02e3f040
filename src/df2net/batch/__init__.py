"""Reconstructing many photos into one output folder, resumably, on one machine or a Ray cluster.

The pieces, each with one job (the two engines share all but their loop):

- :mod:`df2net.batch.options`: :class:`ReconstructOptions`, how every worker builds its
  :class:`~df2net.reconstruct.Reconstructor` and which files it writes;
- :mod:`df2net.batch.inputs`: the photos to do (files, folders, ``@list.txt``) and their
  output folder names;
- :mod:`df2net.batch.records`: one photo's outputs written all or nothing, with the record
  ``OUT/<stem>/photo.json`` that lets a rerun skip it (checked against the files);
- :mod:`df2net.batch.results`: the results table ``OUT/results.parquet`` and the run summary;
- :mod:`df2net.batch.local`: the local engine, one photo after another in this process;
- :mod:`df2net.batch.ray_engine`: the same on a Ray cluster with Ray Data (needs the
  ``cluster`` extra; nothing else here imports ray).
"""
