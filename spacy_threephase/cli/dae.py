"""(placeholder: commands are added by the module that implements this step)"""
