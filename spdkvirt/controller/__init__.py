"""The master controller: one of any number of controller processes leads (elected through the
store) and keeps the volume mappings consistent with the devices and nodes that exist, running
quiescence epochs to change them. The others wait to take over.
"""
