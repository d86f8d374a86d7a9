from shared.migrations import run_env

from services.matching.models import Base

run_env(Base.metadata)
