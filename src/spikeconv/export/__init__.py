"""Export of converted networks: NIR interchange (:mod:`spikeconv.export.nir`, needs the ``export`` extra).

Importing :mod:`spikeconv.export.nir` fills the NIR slot (``rule.export["nir"]``) of the library's
conversion rules.
"""
