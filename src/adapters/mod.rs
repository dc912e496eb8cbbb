//! Adapters: the only code that talks to Docker, the metadata database, OMS health and the clock. (under construction)
