from shared.migrations import run_env

from services.supply.models import Base

run_env(Base.metadata)
